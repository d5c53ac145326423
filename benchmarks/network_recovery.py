#!/usr/bin/env python3
"""Network drivers: how long data stays stale when the agent / daemon is stopped and restarted.

    .venv-3.11/bin/python benchmarks/network_recovery.py [--runs 3] [--down 20] [--quick] [--no-c]
                                                        [--out docs/benchmarks.md]

Two network drivers, each against the real thing it talks to, started the way the
tests start it (tests/support): ``snmp-ups`` against snmpsim serving the APC
Smart-UPS/NMC recording (the agent is killed and started again on the same UDP port;
``pollfreq`` 1 s, ``snmp_timeout`` 0.5 s, ``snmp_retries`` 1), and ``powerman-pdu``
against powermand with vpcd behind it (powermand is stopped and started again;
``pollinterval`` 2 s). Each scenario gets a fresh server, the bridge or NUT's C upsd
with its C driver, and ``--runs`` outages of ``--down`` seconds.

Everything is measured from outside, over the network protocol, as a NUT client sees
it: a fresh connection every 50 ms asks ``GET VAR`` (``ups.status``; the PDU has none,
so ``outlet.1.status``). "Goes stale" is the time from the stop to the first answer
that is not a ``VAR`` line (``ERR DATA-STALE``; any other answer is named in the
table). While the agent is down its data changes (the SNMP recording switches
between on line and on battery; a restarted vpcd starts with every plug off, plug 1
was on), so "back" is the time from the restart, including the daemon's own
start-up, to the first answer with the new value: a server still serving the value
from before the outage has not recovered.

Measures, asserts nothing; writes the median and max of the runs into its own
"## Network drivers: agent / daemon restart" section of docs/benchmarks.md (after
run.py's KEEP marker; the rest of the file is kept). Not part of the test suite
(tests/test_snmp.py and tests/test_powerman.py assert the bridge's bounds). Needs the
test extra (tests/support imports pytest), snmpsim + snmpsim-data, powerman (powermand,
pm, vpcd) and, for the C rows, Debian's nut-server, nut-snmp and nut-powerman-pdu;
``--no-c`` skips them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bridge")]

from benchmarks.sections import code_version, median_max, publish, until  # noqa: E402
from tests.support import powerman, realnut, snmpsim  # noqa: E402

SECTION = "## Network drivers: agent / daemon restart"
POLL = 0.05  # s between GET VAR probes
BACK_CAP = 60.0  # give up waiting for fresh data this long after the restart
TARGET = 10.0  # s from the restart to fresh data, for the bridge
WIDTH = 100  # prose line width in the Markdown
RECORDING = "apc-smartups-nmc"
# upsBasicOutputStatus of the APC PowerNet MIB: 2 onLine, 3 onBattery (both drivers map it to ups.status)
STATUS_OID = "1.3.6.1.4.1.318.1.1.1.4.1.1.0"
STATUS_CODE = {"OL": "2", "OB": "3"}


@dataclass
class Outcome:
    """One outage: seconds from the stop / the restart; None = not within the cap."""

    stale: float | None
    answer: str  # the first answer that was not a VAR line
    ready: float  # the daemon's own start-up (restart -> it answers its clients)
    back: float | None

    @property
    def after_ready(self) -> float | None:
        """The driver's own part of ``back``: from the daemon answering again to fresh data."""
        return None if self.back is None else max(0.0, self.back - self.ready)


@dataclass
class Row:
    label: str
    kind: str  # bridge | c
    outcomes: list[Outcome] = field(default_factory=list)
    note: str = ""


class Fault:
    """A daemon the driver talks to, which the benchmark stops and starts again.

    ``fresh(i)`` changes what it will serve after the ``i``-th restart and says which value
    of ``var`` that is; ``before(i)`` makes sure the old value is served before the stop."""

    label = ""
    ups = "ups"
    var = "ups.status"

    def __init__(self, root: Path) -> None:
        self.root = root

    def options(self, kind: str) -> dict[str, str]:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def before(self, i: int) -> str:
        raise NotImplementedError

    def fresh(self, i: int) -> str:
        raise NotImplementedError


class SnmpAgent(Fault):
    label = "snmp-ups, snmpsim agent stopped"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.agent = snmpsim.Agent(root / "snmpsim", [RECORDING])
        self.agent.prepare()
        self.data = self.agent.data_dir / f"{RECORDING}.snmprec"

    def options(self, kind: str) -> dict[str, str]:
        # NUT reads snmp_timeout as whole seconds (atol): 0.5 would become 0
        return {"driver": "snmp-ups", "port": f"127.0.0.1:{self.agent.port}", "community": RECORDING,
                "snmp_version": "v2c", "pollfreq": "1", "snmp_retries": "1",
                "snmp_timeout": "0.5" if kind == "bridge" else "1"}

    def start(self) -> None:
        self.agent.start()

    def stop(self) -> None:
        self.agent.stop()

    def _status(self, i: int) -> str:
        return "OB" if i % 2 == 0 else "OL"

    def before(self, i: int) -> str:
        return "OL" if i == 0 else self._status(i - 1)

    def fresh(self, i: int) -> str:
        status = self._status(i)
        lines = [f"{STATUS_OID}|2|{STATUS_CODE[status]}" if line.startswith(STATUS_OID + "|") else line
                 for line in self.data.read_text().splitlines()]
        self.data.write_text("\n".join(lines) + "\n")
        return status


class PowermanDaemon(Fault):
    label = "powerman-pdu, powermand stopped"
    ups = "pdu"
    var = "outlet.1.status"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.rig = powerman.PowermanRig(root / "powerman")
        self.label = f"powerman-pdu, powermand ({self.rig.kind}) stopped"

    def options(self, kind: str) -> dict[str, str]:
        return {"driver": "powerman-pdu", "port": self.rig.address, "pollinterval": "2"}

    def start(self) -> None:
        self.rig.start()  # returns once `pm -q` reports every plug

    def stop(self) -> None:
        self.rig.stop()

    def before(self, i: int) -> str:
        self.rig.pm("-1", "t0")  # outlet.1 is node t0
        return "on"

    def fresh(self, i: int) -> str:
        return "off"  # a restarted vpcd starts with every plug off


def ask(port: int, ups: str, var: str) -> tuple[bool, str]:
    """(True, value) for a VAR answer, else (False, the answer line or what went wrong)."""
    try:
        line = realnut.ask_line(port, f"GET VAR {ups} {var}\n".encode(), timeout=2.0)
    except OSError as e:
        return False, f"no answer ({type(e).__name__})"
    text = line.decode(errors="replace").strip()
    prefix = f"VAR {ups} {var} "
    if text.startswith(prefix):
        return True, text[len(prefix):].strip('"')
    return False, text or "connection closed"


def served(port: int, fault: Fault, value: str) -> Callable[[], bool]:
    def check() -> bool:
        ok, got = ask(port, fault.ups, fault.var)
        return ok and got.split(" ")[0] == value

    return check


def one_outage(port: int, fault: Fault, i: int, down: float) -> Outcome:
    first_err = ""

    def not_var() -> bool:
        nonlocal first_err
        ok, got = ask(port, fault.ups, fault.var)
        if not ok:
            first_err = got
        return not ok

    t0 = time.monotonic()
    fault.stop()
    stale = until(not_var, down, POLL)
    new = fault.fresh(i)
    time.sleep(max(0.0, down - (time.monotonic() - t0)))
    t1 = time.monotonic()
    fault.start()
    ready = time.monotonic() - t1
    back = until(served(port, fault, new), BACK_CAP - ready, POLL)
    return Outcome(stale, first_err, ready, None if back is None else back + ready)


@contextmanager
def server(kind: str, cfg: realnut.NutConfig) -> Iterator[int]:
    if kind == "c":
        with realnut.c_upsd(cfg, wait_ready=False):  # NUT's powerman-pdu leaves ups.status at WAIT
            yield cfg.port
    else:
        with realnut.BridgeProcess.start(cfg):
            yield cfg.port


def run_row(kind: str, make: type[Fault], runs: int, down: float, root: Path) -> Row:
    fault = make(root)
    row = Row(fault.label, kind)
    try:
        fault.start()
        cfg = realnut.NutConfig(root / kind)
        cfg.add_ups(fault.ups, **fault.options(kind))
        with server(kind, cfg) as port:
            for i in range(runs):
                value = fault.before(i)
                if until(served(port, fault, value), 30, POLL) is None:
                    row.note = f"{fault.var} never {value!r} before the outage"
                    break
                time.sleep(1.0)
                out = one_outage(port, fault, i, down)
                row.outcomes.append(out)
                print(f"  {kind:6} {row.label}: stale after {_s(out.stale)} ({out.answer or '-'}), "
                      f"daemon ready {_s(out.ready)}, back after {_s(out.back)}", flush=True)
                if out.back is None:
                    row.note = f"not back {BACK_CAP:.0f} s after the restart"
                    break  # the server will not recover: no point repeating
    except Exception as e:  # a server that does not start is a result too, not a crash of the run
        row.note = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"  {kind:6} {row.label}: {row.note}", flush=True)
    finally:
        fault.stop()
    return row


def _s(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f} s" if x < 1 else f"{x:.1f} s"


def _median(values: list[float | None]) -> float | None:
    nums = [v for v in values if v is not None]
    return statistics.median(nums) if nums and len(nums) == len(values) else None


def _cell(values: list[float | None], never: str) -> str:
    return median_max(values, never, _s)


def report(rows: list[Row], runs: int, down: float, argv: list[str], started: datetime.datetime,
           total_s: float, quick: bool, c_note: str) -> str:
    L = [SECTION, ""]
    w = L.append
    w(textwrap.fill(
        "snmp-ups against snmpsim (APC Smart-UPS/NMC recording; the agent is killed and started again "
        "on the same UDP port; `pollfreq` 1 s, `snmp_timeout` 0.5 s, `snmp_retries` 1) and powerman-pdu "
        "against a real powermand with vpcd behind it (stopped and started again; `pollinterval` 2 s), "
        f"each outage {down:g} s long. Generated by `benchmarks/network_recovery.py` "
        "(`make bench-network`); do not edit by hand, re-run it.", WIDTH, break_on_hyphens=False))
    w("")
    w(f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({'quick' if quick else 'full'} run, "
      f"{total_s:.0f} s)")
    w(f"- Command: `{' '.join(argv)}`")
    w(f"- Code: {code_version()}")
    w(f"- Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, Python "
      f"{platform.python_version()}, NUT {realnut.nut_version() or 'not installed'}")
    w("")
    w(textwrap.fill(
        "Measured from outside, as a NUT client sees it: a fresh connection every "
        f"{POLL * 1000:.0f} ms asks `GET VAR` (`ups.status`; the PDU has none, so `outlet.1.status`). "
        "\"Goes stale\" counts from the stop to the first answer that is not a `VAR` line (named in "
        "its own column). While the daemon is down the data changes (the recording switches between "
        "on line and on battery; a restarted vpcd starts with every plug off, plug 1 was on), so "
        "\"back\" counts from the restart, including the daemon's own start-up (shown on its own: until "
        "snmpsim answers a GET, until `pm -q` reports every plug), to the first answer with the new "
        "value; the last column is the drivers' own part. A fresh server per row, "
        f"{runs} outage(s) per row: median (max).", WIDTH, break_on_hyphens=False))
    w("")
    w("| driver / fault | server | goes stale after the stop | first answer not a VAR "
      "| daemon answers after the restart | data back after the restart "
      "| of which after the daemon answers |")
    w("|---|---|---|---|---|---|---|")
    never_back = f"not within {BACK_CAP:.0f} s"
    for r in rows:
        name = "bridge" if r.kind == "bridge" else "C upsd + driver"
        if not r.outcomes:
            w(f"| {r.label} | {name} | {r.note or '—'} | — | — | — | — |")
            continue
        answers = [f"`{a}`" for a in sorted({o.answer for o in r.outcomes if o.answer})]
        if any(o.stale is None for o in r.outcomes):
            answers.append("none: the old value was served all along")
        w(f"| {r.label} | {name} | {_cell([o.stale for o in r.outcomes], f'not within {down:g} s')} "
          f"| {', '.join(answers)} | {_cell([o.ready for o in r.outcomes], '—')} "
          f"| {_cell([o.back for o in r.outcomes], never_back)} "
          f"| {_cell([o.after_ready for o in r.outcomes], never_back)} |")
    w("")
    bridge = {r.label: r for r in rows if r.kind == "bridge"}
    pairs = [(bridge[r.label], r) for r in rows if r.kind == "c" and r.label in bridge]
    if pairs:
        w("C / bridge (median against median; > 1: the bridge is faster):")
        w("")
        w("| driver / fault | goes stale | data back | data back after the daemon answers |")
        w("|---|---|---|---|")
        for b, c in pairs:
            cells = []
            for attr in ("stale", "back", "after_ready"):
                mb = _median([getattr(o, attr) for o in b.outcomes])
                mc = _median([getattr(o, attr) for o in c.outcomes])
                missed = "not stale in every run" if attr == "stale" else "not back in every run"
                if not b.outcomes or not c.outcomes:
                    cells.append("—")
                elif mb is None or mc is None:
                    cells.append(f"— ({'bridge' if mb is None else 'C'} {missed})")
                else:
                    cells.append(f"**{mc / mb:.1f}x**" if mb > 0 else "—")
            w(f"| {b.label} | {' | '.join(cells)} |")
        w("")
    if c_note:
        w(textwrap.fill(c_note, WIDTH, break_on_hyphens=False))
        w("")
    worst = [o.back for r in rows if r.kind == "bridge" for o in r.outcomes]
    if worst and all(b is not None for b in worst) and not any(r.note for r in bridge.values()):
        top = max(b for b in worst if b is not None)
        w(f"Target: bridge data back < {TARGET:g} s after the restart. Worst case {top:.1f} s: "
          + ("met." if top < TARGET else "NOT met."))
    else:
        w(f"Target: bridge data back < {TARGET:g} s after the restart: NOT met (not back in every run).")
    w("")
    w(textwrap.fill(
        "NUT's snmp-ups reads `snmp_timeout` as whole seconds, so the C rows run with 1 s (0.5 would "
        "become 0): its requests wait twice as long before they count as failed, which the stale "
        "ratio includes. tests/test_snmp.py::test_agent_down_stale_then_recovery and "
        "tests/test_powerman.py::test_powermand_restart_recovery check the bridge's side of this "
        "on every CI run.", WIDTH, break_on_hyphens=False))
    w("")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="outages per row (default 3)")
    ap.add_argument("--down", type=float, default=20.0, help="seconds each outage lasts (default 20)")
    ap.add_argument("--quick", action="store_true", help="1 outage per row")
    ap.add_argument("--no-c", action="store_true", help="skip NUT's C drivers")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    a = ap.parse_args()
    runs = 1 if a.quick else a.runs
    missing = [what for what, ok in (("snmpsim + snmpsim-data", snmpsim.snmpsim_available()),
                                     ("powermand", powerman.powermand()), ("pm", powerman.pm_client()))
               if not ok]
    if missing:
        sys.exit(f"network_recovery: missing {', '.join(missing)} (pip install snmpsim snmpsim-data; "
                 "apt-get install powerman)")
    kinds = ["bridge"]
    c_note = ""
    if a.no_c:
        c_note = "NUT's C drivers were not run (`--no-c`)."
    elif all(realnut.daemon(d) for d in ("upsd", "snmp-ups", "powerman-pdu")):
        kinds.append("c")
    else:
        c_note = ("NUT's C drivers are not installed here (upsd, snmp-ups, powerman-pdu: apt-get install "
                  "nut-server nut-snmp nut-powerman-pdu): bridge only.")
        print(c_note, file=sys.stderr)
    faults: list[type[Fault]] = [SnmpAgent, PowermanDaemon]
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="netbench-") as tmp:
        for i, make in enumerate(faults):
            for kind in kinds:
                print(f"[{time.monotonic() - t0:5.0f} s] {kind}: {make.__name__}", flush=True)
                rows.append(run_row(kind, make, runs, a.down, Path(tmp) / f"{i}-{kind}"))
    argv = [os.path.relpath(sys.executable, REPO), "benchmarks/network_recovery.py", *sys.argv[1:]]
    text = report(rows, runs, a.down, argv, started, time.monotonic() - t0, a.quick, c_note)
    publish(a.out, SECTION, text, t0, "network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
