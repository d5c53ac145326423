"""Run a real powermand (LLNL powerman) on a free loopback port for the Powerman tests.

The plugs behind it are a virtual power controller of the "vpc" kind: Debian's
``/usr/sbin/vpcd`` where the powerman package ships it (Debian 12, powerman 2.3.27).
powerman 2.4.4 (sid) no longer ships vpcd nor ``/etc/powerman/vpc.dev``; there we
run :func:`vpc_main` (below) instead, a stand-in written for these tests that
speaks vpcd's device protocol as observed on 2.3.27 (``N vpc>`` prompts, ``login``,
``stat *``, ``on|off K|*``, ``N OK``), with a device script of our own that drives
it the way vpc.dev does. powermand itself (the client protocol under test) is the
real daemon in both cases.

    with PowermanRig(tmp_path, plugs=16) as rig:
        rig.pm("-1", "t3")
        rig.states()          # {"t0": "off", ..., "t3": "on", ...}
        rig.stop(); rig.start()   # fault injection: the daemon goes away and comes back

``python -m tests.support.powerman vpc [PLUGS]`` runs the stand-in on stdin/stdout.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .realnut import free_port

REPO = Path(__file__).resolve().parents[2]
VPC_DEV = Path("/etc/powerman/vpc.dev")

# A "vpc" device script for the stand-in, used when /etc/powerman/vpc.dev is absent.
# It follows powerman's device-script language (powerman.dev(5)).
_VPC_SPEC = """\
specification "vpc" {
    timeout 5.0
    plug name { %(plugs)s }
    script login {
        send "login\\n"
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
    }
    script logout {
        send "logoff\\n"
        expect "[0-9]* OK\\n"
    }
    script status_all {
        send "stat *\\n"
        foreachplug {
            expect "plug ([0-9]+): (ON|OFF)\\n"
            setplugstate $1 $2 on="ON" off="OFF"
        }
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
    }
    script on {
        send "on %%s\\n"
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
    }
    script off {
        send "off %%s\\n"
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
    }
    script cycle {
        send "off %%s\\n"
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
        delay 1.0
        send "on %%s\\n"
        expect "[0-9]* OK\\n"
        expect "[0-9]* vpc> "
    }
}
"""


def powermand() -> str | None:
    return shutil.which("powermand", path="/usr/sbin:/usr/bin:/sbin:/bin")


def pm_client() -> str | None:
    return shutil.which("pm", path="/usr/bin:/bin:/usr/sbin:/sbin")


def vpcd() -> str | None:
    return shutil.which("vpcd", path="/usr/sbin:/usr/bin:/usr/libexec/powerman:/usr/lib/powerman")


def nut_powerman_pdu() -> str | None:
    for d in ("/lib/nut", "/usr/libexec/nut", "/usr/lib/nut"):
        p = Path(d) / "powerman-pdu"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def expand(hostlist: str) -> list[str]:
    """``t[0-2,5],x`` -> t0 t1 t2 t5 x (what `pm -q` prints is compressed)."""
    out: list[str] = []
    for part in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", hostlist):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not m:
            out.append(part)
            continue
        for rng in m.group(2).split(","):
            lo, _, hi = rng.partition("-")
            width = len(lo) if lo.startswith("0") else 0
            for n in range(int(lo), int(hi or lo) + 1):
                out.append(f"{m.group(1)}{n:0{width}d}{m.group(3)}")
    return out


class PowermanRig:
    """powermand + a vpc controller with ``plugs`` plugs named t0..t<plugs-1>."""

    def __init__(self, root: Path, plugs: int = 16, *, stand_in: bool = False) -> None:
        self.root = root
        self.plugs = plugs
        self.port = free_port()
        self.daemon = powermand()
        self.vpcd = None if stand_in else vpcd()
        self.spec = VPC_DEV if self.vpcd and VPC_DEV.is_file() and plugs == 16 else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "powermand.log"
        self.nodes = [f"t{i}" for i in range(plugs)]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def kind(self) -> str:
        return "vpcd" if self.vpcd else "vpc stand-in"

    def _write_conf(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        if spec is None:
            spec = self.root / "vpc.dev"
            names = " ".join(f'"{i}"' for i in range(self.plugs))
            spec.write_text(_VPC_SPEC % {"plugs": names})
        if self.vpcd:
            device = f"{self.vpcd} |&"
        else:  # powermand runs coprocesses with its own environment and cwd
            device = (f"/usr/bin/env PYTHONPATH={REPO} {sys.executable} -m tests.support.powerman"
                      f" vpc {self.plugs} |&")
        conf = self.root / "powerman.conf"
        conf.write_text(
            f'include "{spec}"\n'
            f'listen "{self.address}"\n'
            f'device "test0" "vpc" "{device}"\n'
            f'node "t[0-{self.plugs - 1}]" "test0"\n'
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        assert self.daemon, "powermand not installed"
        conf = self._write_conf()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.daemon, *_foreground(self.daemon), "-c", str(conf)],
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until powermand answers and the controller has reported every plug."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"powermand exited with {self.proc.returncode}:\n{self.log()}")
            try:
                states = self.states()
                if len(states) == self.plugs and "unknown" not in states.values():
                    return
                last = repr(states)
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise TimeoutError(f"powermand not ready on {self.address}: {last}\n{self.log()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def pm(self, *args: str, timeout: float = 15.0) -> str:
        """Run the ``pm`` client against this daemon; RuntimeError on failure."""
        exe = pm_client()
        assert exe, "pm not installed"
        p = subprocess.run([exe, "-h", self.address, *args], capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"pm {' '.join(args)}: exit {p.returncode}: {p.stdout}{p.stderr}")
        return p.stdout

    def states(self) -> dict[str, str]:
        """Every plug's state as `pm -q` reports it (node -> on/off/unknown)."""
        out: dict[str, str] = {}
        for line in self.pm("-q", timeout=5).splitlines():
            state, _, hosts = line.partition(":")
            for node in expand(hosts.strip()):
                out[node] = state.strip()
        return out

    def raw(self, *commands: str, timeout: float = 10.0) -> list[bytes]:
        """Each command's raw answer (up to and including the prompt) on one connection."""
        answers = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            answers.append(_read_prompt(s))
            for cmd in commands:
                s.sendall(cmd.encode() + b"\r\n")
                answers.append(_read_prompt(s))
        return answers

    def __enter__(self) -> PowermanRig:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _foreground(daemon: str) -> list[str]:
    # 2.3 daemonizes unless -f; 2.4 stays in the foreground and has no -f
    p = subprocess.run([daemon, "-h"], capture_output=True, text=True, timeout=5)
    return ["-f"] if "--foreground" in p.stdout + p.stderr else []


def _read_prompt(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"powerman> "):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


# ---- the vpc stand-in (device side: what powermand's device script talks to) ------------------

def vpc_main(plugs: int = 16) -> int:
    """Serve vpcd's protocol on stdin/stdout until EOF or ``logoff``."""
    state = ["OFF"] * plugs
    out = sys.stdout
    seq = 0
    while True:
        out.write(f"{seq} vpc> ")
        out.flush()
        line = sys.stdin.readline()
        if not line:
            return 0
        words = line.split()
        cmd, arg = [*words, "", ""][:2]
        targets: list[int] = []
        if arg == "*":
            targets = list(range(plugs))
        elif arg.isdigit() and int(arg) < plugs:
            targets = [int(arg)]
        if cmd in ("login", "flash", "unflash") or (cmd == "" and not words):
            pass
        elif cmd == "logoff":
            out.write(f"{seq} OK\n")
            out.flush()
            return 0
        elif cmd == "stat" and targets:
            out.write("".join(f"plug {i}: {state[i]}\n" for i in targets))
        elif cmd in ("on", "off") and targets:
            for i in targets:
                state[i] = cmd.upper()
        else:
            out.write(f"{seq} UNKNOWN: {line.strip()}\n")
            seq += 1
            continue
        out.write(f"{seq} OK\n")
        seq += 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "vpc":
        sys.exit(vpc_main(int(sys.argv[2]) if len(sys.argv) > 2 else 16))
    sys.exit(f"usage: {sys.argv[0]} vpc [PLUGS]")
