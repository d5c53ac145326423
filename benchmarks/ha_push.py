#!/usr/bin/env python3
"""Home Assistant push latency: INSTCMD on the simulated UPS to the HA state change.

    ../shared/tools/sid .venv-3.14/bin/python benchmarks/ha_push.py [--cycles 200] [--runs 3]

Runs tests_ha/test_push.py::test_push_latency_command_to_state (a real bridge with
the simulated UPS, Home Assistant's test harness, the integration subscribed by
push, polling at 60 s) with more mains loss/restore cycles, and prints the p50/p99
of each run as a Markdown table. Home Assistant needs Python >= 3.14.2 and
requirements-ha.txt (inside sid: .venv-3.14). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests_ha/test_push.py::test_push_latency_command_to_state"
LINE = re.compile(r"over (\d+) mains loss/restore cycles: p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=200, help="commands per run (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="runs, each a fresh bridge and HA (default 3)")
    args = ap.parse_args()

    env = dict(os.environ, NUTBRIDGE_HA_PUSH_CYCLES=str(args.cycles))
    cmd = [sys.executable, "-m", "pytest", "-p", "homeassistant", "-p", "no:cacheprovider", "-q", TEST]
    print("| run | cycles | p50 (ms) | p99 (ms) | max (ms) |")
    print("|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        m = LINE.search(proc.stdout)
        if proc.returncode or not m:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            return proc.returncode or 1
        n, p50, p99, mx = m.groups()
        print(f"| {run} | {n} | {p50} | {p99} | {mx} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
