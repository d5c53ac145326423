"""Hostile clients must not starve well-behaved ones (issue 12).

The small CI version of benchmarks/hostile.py: for every payload class of
benchmarks/hostile_load.py, a real ``nutbridge serve`` with one dummy-ups UPS holds a
few idle connections while a separate process runs hostile clients for a few
seconds; meanwhile every poll on a fresh connection must be answered with exactly
the right line. Correctness only (generous timeouts): the timings are the
benchmark's business. Afterwards the server is alive, still answers, and the idle
connections are still open and answer too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from benchmarks.hostile_load import PAYLOADS, open_idle, poll_once, still_open

from tests.conftest import BridgeServer
from tests.support.realnut import REPO, NutConfig, wait_ready_ups

UPS = "ups"  # the payloads name this UPS
DEV = "ups.status: OL\nbattery.charge: 87\nups.mfr: NUT Bridge\nups.model: Hostile\n"
EXPECT = f'VAR {UPS} battery.charge "87"'
LOAD = REPO / "benchmarks" / "hostile_load.py"
ATTACK_S = 2.5
THREADS = 6
IDLE = 20
# per poll: correctness, not latency (NUTBRIDGE_HOSTILE_POLL_TIMEOUT=1 makes it a latency check, locally)
POLL_TIMEOUT = float(os.environ.get("NUTBRIDGE_HOSTILE_POLL_TIMEOUT", "5"))
POLL_GAP = 0.05


def _ask_all(socks: list[socket.socket], timeout: float = POLL_TIMEOUT) -> list[str]:
    """One GET VAR on each already-open connection; the answer lines."""
    out = []
    for s in socks:
        s.setblocking(True)
        s.settimeout(timeout)
        s.sendall(f"GET VAR {UPS} battery.charge\n".encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        out.append(buf.split(b"\n", 1)[0].decode("utf-8", "replace"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_polls_answered_under_hostile_load(
    payload: str, bridge_server: Callable[..., BridgeServer], tmp_path: Path
) -> None:
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True, exist_ok=True)
    (cfg.root / "ups.dev").write_text(DEV)
    cfg.add_ups(UPS, driver="dummy-ups", port=str(cfg.root / "ups.dev"))
    srv = bridge_server(cfg)
    wait_ready_ups(srv.port, [UPS])
    assert poll_once(srv.port, UPS, POLL_TIMEOUT)[0] == EXPECT

    idle, info = open_idle(srv.port, UPS, IDLE, budget=15.0)
    try:
        assert len(idle) == IDLE, info
        attacker = subprocess.Popen(
            [sys.executable, str(LOAD), "attack", "--port", str(srv.port), "--payload", payload,
             "--threads", str(THREADS), "--seconds", str(ATTACK_S), "--mode", "burst"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        answers: list[tuple[str | None, float]] = []
        try:
            time.sleep(0.3)  # the hostile clients are connected and sending
            deadline = time.monotonic() + ATTACK_S + 2 * POLL_TIMEOUT
            while attacker.poll() is None and time.monotonic() < deadline and len(answers) < 500:
                answers.append(poll_once(srv.port, UPS, POLL_TIMEOUT))
                time.sleep(POLL_GAP)
            out, err = attacker.communicate(timeout=ATTACK_S + 30)
        finally:
            if attacker.poll() is None:
                attacker.kill()
                attacker.wait()
        assert attacker.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["sends"] > 0, stats  # the hostile load did reach the server

        bad = [(line, round(dt, 3)) for line, dt in answers if line != EXPECT]
        assert answers and not bad, (
            f"{len(bad)} of {len(answers)} polls not answered with {EXPECT!r} during the "
            f"{payload!r} attack (first: {bad[:5]}); hostile clients: {stats}")

        # afterwards: alive, answering fresh connections and the idle ones
        assert srv.proc.poll() is None, srv.log()[-3000:]
        for _ in range(3):
            assert poll_once(srv.port, UPS, POLL_TIMEOUT)[0] == EXPECT
        assert still_open(idle) == IDLE
        assert _ask_all(idle) == [EXPECT] * IDLE
    finally:
        for s in idle:
            s.close()
