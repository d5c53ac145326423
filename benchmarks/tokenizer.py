#!/usr/bin/env python3
"""What a byte of each kind of input costs upsd: the tokenizer alone, and end to end
beside the C upsd.

    .venv/bin/python benchmarks/tokenizer.py [--quick] [--out docs/benchmarks.md]

1. In process: MB/s of ``Tokenizer.feed`` per input class, fed in 64 KiB reads, at
   1 MiB and 8 MiB (the ratio of the two times says whether the cost is linear),
   beside the per-byte state machine this project shipped before (commit 5d4e62f,
   read from git at run time).
2. End to end: one connection sends 2 MiB of the class, then closes whatever the
   input left open and asks ``GET VAR``; the time until that answer and the
   server's CPU for it, C upsd 2.8 + dummy-ups and the bridge side by side.

Writes the "## Tokenizer: cost per input byte" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import random
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bridge"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

import run as rb  # noqa: E402  (benchmarks/run.py: servers, machine info)
from sections import code_version, write_section  # noqa: E402

from nutbridge.protocol import tokenizer as current  # noqa: E402
from support import fuzzing  # noqa: E402

BEFORE = "5d4e62f"  # the last commit with the per-byte state machine
SECTION = "## Tokenizer: cost per input byte"
READ = 64 * 1024
SENTINEL = b"GET VAR ups ups.status\n"


def _lines(line: bytes) -> Callable[[int], bytes]:
    return lambda n: (line * (n // len(line) + 1))[:n]


def _random(seed: int, alphabet: bytes) -> Callable[[int], bytes]:
    def make(n: int) -> bytes:
        rng = random.Random(seed)
        return bytes(rng.choice(alphabet) for _ in range(n))
    return make


# name -> (what it is, generator of n bytes)
CLASSES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "plain requests": ("`GET VAR ups battery.charge` lines", _lines(b"GET VAR ups battery.charge\n")),
    "100 kB lines": ("lines of 100,000 `A`", _lines(b"A" * 100_000 + b"\n")),
    "unterminated quote": ('`GET VAR "ups ups.status` lines (each quote spans a newline)',
                           _lines(b'GET VAR "ups ups.status\n')),
    "40 arguments": ("lines of 40 short words", _lines(b" ".join(b"w%d" % i for i in range(40)) + b"\n")),
    "300 backslashes": ("lines of 300 backslashes", _lines(b"\\" * 300 + b"\n")),
    "control bytes": ("random bytes 0x00-0x1F (a newline every 32 bytes on average)",
                      _random(1, bytes(range(32)))),
    "random bytes": ("random bytes 0x00-0xFF without `#` or `\"`",
                     _random(2, bytes(b for b in range(256) if b not in b'#"'))),
    "equals signs": ("lines of 50,000 `= `", _lines(b"= " * 50_000 + b"\n")),
}


def load_before() -> types.ModuleType | None:
    try:
        src = subprocess.run(["git", "-C", str(REPO), "show",
                              f"{BEFORE}:bridge/nutbridge/protocol/tokenizer.py"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("tokenizer_before", loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["tokenizer_before"] = mod
    exec(compile(src, f"{BEFORE}:tokenizer.py", "exec"), mod.__dict__)
    return mod


def feed_time(mod: Any, data: bytes) -> float:
    tok = mod.Tokenizer()
    t = time.perf_counter()
    for i in range(0, len(data), READ):
        tok.feed(data[i : i + READ])
    return time.perf_counter() - t


def in_process(sizes: tuple[int, int], before: types.ModuleType | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    small, big = sizes
    for name, (_, make) in CLASSES.items():
        data_s, data_b = make(small), make(big)
        ts = min(feed_time(current, data_s) for _ in range(3))
        tb = min(feed_time(current, data_b) for _ in range(2))
        r: dict[str, float] = {"mbs": big / tb / 1e6, "linear": (tb / big) / (ts / small)}
        if before is not None:
            r["before_mbs"] = small / feed_time(before, data_s) / 1e6
        out[name] = r
        print(f"  {name}: {r['mbs']:.1f} MB/s "
              f"(x{r['linear']:.2f} per byte from {small >> 20} to {big >> 20} MiB)"
              + (f", before {r['before_mbs']:.2f} MB/s" if "before_mbs" in r else ""), flush=True)
    return out


def end_to_end(srv: rb.Server, size: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, (_, make) in CLASSES.items():
        payload = make(size)
        probe = fuzzing.plan(payload)
        # close an unfinished line too (plan() leaves a line of words open: the
        # sentinel would become part of it)
        tail = probe.tail if probe.tail.endswith(b"\n") else probe.tail + b"\n"
        c0, t0 = srv.cpu(), time.monotonic()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sender = _send_async(s, payload + tail + SENTINEL)
            _, ok = fuzzing.read_until(s, b"VAR ups ups.status", timeout=60)
            sender.join(5)
        dt = time.monotonic() - t0
        out[name] = {"ok": ok, "s": dt, "cpu_s": srv.cpu() - c0, "mbs": size / dt / 1e6}
        print(f"  {srv.label}: {name}: {'answered' if ok else 'NOT answered'} after {dt * 1000:.0f} ms "
              f"({out[name]['mbs']:.1f} MB/s, server CPU {out[name]['cpu_s'] * 1000:.0f} ms)", flush=True)
        time.sleep(0.3)
    return out


def _send_async(s: socket.socket, data: bytes) -> Any:
    import threading

    def send() -> None:
        try:
            s.sendall(data)
        except OSError:
            pass
    th = threading.Thread(target=send, daemon=True)
    th.start()
    return th


def report(inproc: dict[str, dict[str, float]], e2e: dict[str, dict[str, dict[str, Any]]],
           sizes: tuple[int, int], e2e_size: int, argv: list[str], started: datetime.datetime) -> str:
    L: list[str] = [SECTION, ""]
    w = L.append
    w(f"Generated by `benchmarks/tokenizer.py` ({' '.join(argv[1:]) or 'full run'}) on "
      f"{started.strftime('%Y-%m-%d %H:%M %Z').strip()}, {code_version()}; Python {sys.version.split()[0]}, "
      f"{rb.sh(rb.daemon('upsd') or 'upsd', '-V').splitlines()[0] if rb.daemon('upsd') else 'no C upsd'}.")
    w("")
    w(f"**In process**: `Tokenizer.feed` in {READ >> 10} KiB reads. `MB/s` at {sizes[1] >> 20} MiB; "
      f"`cost per byte {sizes[1] >> 20} MiB / {sizes[0] >> 20} MiB` is the time per byte at the larger size "
      "divided by that at the smaller one (1.0 = linear); `before` is the per-byte state machine of "
      f"commit {BEFORE}.")
    w("")
    w("| input | what | MB/s | cost per byte ratio | before MB/s | speed-up |")
    w("|---|---|---|---|---|---|")
    for name, (what, _) in CLASSES.items():
        r = inproc[name]
        b = r.get("before_mbs")
        before_cells = f"{b:.2f} | {r['mbs'] / b:.0f}x" if b else "n/a | n/a"
        w(f"| {name} | {what} | {r['mbs']:.1f} | {r['linear']:.2f} | {before_cells} |")
    w("")
    if e2e:
        labels = list(e2e)
        w(f"**End to end**: one connection sends {e2e_size >> 20} MiB of the input, then closes what it left "
          "open and asks `GET VAR ups ups.status`; time until that answer, and the server's CPU meanwhile.")
        w("")
        w("| input | " + " | ".join(f"{lab} ms | {lab} CPU ms" for lab in labels) + " |")
        w("|---|" + "---|---|" * len(labels))
        for name in CLASSES:
            cells = []
            for lab in labels:
                r = e2e[lab][name]
                miss = "" if r["ok"] else " (no answer)"
                cells.append(f"{r['s'] * 1000:.0f}{miss} | {r['cpu_s'] * 1000:.0f}")
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-servers", action="store_true", help="in-process figures only")
    a = ap.parse_args()
    started = datetime.datetime.now().astimezone()
    sizes = (1 << 20, 4 << 20) if a.quick else (1 << 20, 8 << 20)
    before = load_before()
    print("in process", flush=True)
    inproc = in_process(sizes, before)
    e2e: dict[str, dict[str, dict[str, Any]]] = {}
    e2e_size = 2 << 20
    if not a.no_servers:
        with tempfile.TemporaryDirectory(prefix="nuttok-") as tmp:
            root = Path(tmp)
            dev = rb.DEFAULT_DEV
            servers = [rb.start_c(rb.dev_config(root / "c", dev)),
                       rb.start_bridge(rb.dev_config(root / "b", dev), uvloop=True, src=REPO / "bridge",
                                       logdir=root)]
            try:
                for srv in servers:
                    print(f"end to end: {srv.label}", flush=True)
                    e2e[srv.label] = end_to_end(srv, e2e_size)
            finally:
                for srv in servers:
                    srv.stop()
    text = report(inproc, e2e, sizes, e2e_size, ["benchmarks/tokenizer.py", *sys.argv[1:]], started)
    write_section(a.out, SECTION, text)
    print(f"wrote {SECTION!r} to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
