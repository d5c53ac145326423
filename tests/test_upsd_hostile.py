"""upsd against clients that flood, and the stop signal at any moment.

The real ``nutbridge serve`` on real sockets: a client that keeps sending input
upsd refuses is disconnected and logged once (not per line); a client that
pipelines valid requests as fast as it can is served in turns, so another
client's requests are still answered; SIGTERM at any moment of start-up ends in
exit code 0. Correctness only; rates and latencies are in benchmarks/hostile.py.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nutbridge.ratelog import RateLimitedLog
from nutbridge.server import upsd as upsd_mod
from tests.support import realnut
from tests.support.realnut import REPO, BridgeProcess, NutConfig

DEV = "ups.status: OL CHRG\nbattery.charge: 97\nups.mfr: Test\n"
GOOD = b'VAR test battery.charge "97"\n'


def make_cfg(tmp_path: Path) -> NutConfig:
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True, exist_ok=True)
    dev = cfg.root / "test.dev"
    dev.write_text(DEV)
    cfg.add_ups("test", driver="dummy-ups", port=str(dev), desc="Test UPS")
    return cfg


def poll(port: int, timeout: float = 5.0) -> bytes:
    return realnut.ask_line(port, b"GET VAR test battery.charge\n", timeout=timeout)


def flood(port: int, data: bytes, total: int) -> tuple[int, str]:
    """Send ``data`` repeatedly up to ``total`` bytes, reading (and dropping) the
    answers meanwhile; return the bytes sent and how it ended ("reset" when the
    server cut us off)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        ended = threading.Event()

        def drain() -> None:
            try:
                while s.recv(1 << 16):
                    pass
            except OSError:
                pass
            ended.set()

        threading.Thread(target=drain, daemon=True).start()
        try:
            while sent < total and not ended.is_set():
                s.sendall(data)
                sent += len(data)
        except (ConnectionResetError, BrokenPipeError):
            return sent, "reset"
        if ended.wait(10) and sent < total:
            return sent, "reset"
    return sent, "eof"


def test_rate_limited_log_once_per_key_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    lg = logging.getLogger("test.ratelog")
    rl = RateLimitedLog(lg, interval=0.2, max_keys=2)
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        assert rl.log(logging.INFO, "10.0.0.1", "parse", "parse error from %s", "10.0.0.1")
        for _ in range(50):
            assert not rl.log(logging.INFO, "10.0.0.1", "parse", "parse error from %s", "10.0.0.1")
        assert rl.log(logging.INFO, "10.0.0.2", "parse", "parse error from %s", "10.0.0.2")
        time.sleep(0.25)
        assert rl.log(logging.INFO, "10.0.0.1", "parse", "parse error from %s", "10.0.0.1")
    texts = [r.getMessage() for r in caplog.records]
    assert len(texts) == 3
    assert "50 more like this from 10.0.0.1" in texts[2]
    # bounded: only the newest keys are kept
    rl.log(logging.INFO, "a", "k", "x")
    rl.log(logging.INFO, "b", "k", "x")
    rl.log(logging.INFO, "c", "k", "x")
    assert len(rl._keys) == 2


@pytest.mark.interop
def test_flood_of_refused_input_is_cut_off_and_logged_once(tmp_path: Path) -> None:
    realnut.require_daemon("dummy-ups")  # the bridge runs its own dummy-ups; keeps CI honest about NUT
    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg) as br:
        realnut.wait_ready_ups(cfg.port, ["test"])
        total = 4 * upsd_mod.WASTE_BURST
        for unit in (b"A" * 65536, b"\x01 \x02\n" * 16384, b"NOPE\n" * 13000):
            sent, how = flood(cfg.port, unit, total)
            assert how == "reset", f"{unit[:8]!r}: sent {sent} bytes of refused input and was not cut off"
            assert sent < total
            assert poll(cfg.port) == GOOD
        log = br.log()
        # three floods from one peer within a minute: one line says so
        assert log.count("Disconnecting 127.0.0.1") == 1, log[-3000:]
        assert "Traceback" not in log


@pytest.mark.interop
def test_parse_errors_are_logged_once_per_peer(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg) as br:
        realnut.wait_ready_ups(cfg.port, ["test"])
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", cfg.port), timeout=5) as s:
                s.sendall(b'GET VAR "test#" battery.charge\n')
        assert poll(cfg.port) == GOOD
        time.sleep(0.2)
        assert br.log().count("Parse error on sock from 127.0.0.1") == 1, br.log()[-3000:]


@pytest.mark.interop
def test_pipelining_client_does_not_starve_another(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["test"])
        stop = threading.Event()
        answered = [0]

        def hog() -> None:
            # valid requests, pipelined as fast as the socket takes them, answers read
            req = b"GET VAR test ups.status\n" * 2048
            with socket.create_connection(("127.0.0.1", cfg.port), timeout=10) as s:
                def reader() -> None:
                    while not stop.is_set():
                        data = s.recv(1 << 16)
                        if not data:
                            return
                        answered[0] += data.count(b"\n")
                t = threading.Thread(target=reader, daemon=True)
                t.start()
                deadline = time.monotonic() + 20
                while not stop.is_set() and time.monotonic() < deadline:
                    s.sendall(req)
                stop.set()
                s.shutdown(socket.SHUT_RDWR)
                t.join(5)

        th = threading.Thread(target=hog, daemon=True)
        th.start()
        time.sleep(0.5)
        try:
            got = [poll(cfg.port) for _ in range(30)]
        finally:
            stop.set()
            th.join(10)
        assert got == [GOOD] * 30
        assert answered[0] > 1000, "the pipelining client was not served either"


def _start(cfg: NutConfig) -> subprocess.Popen[bytes]:
    cfg.write()
    env = cfg.env()
    env["PYTHONPATH"] = str(REPO / "bridge") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigterm_at_any_moment_after_listen_exits_zero(tmp_path: Path) -> None:
    # The listener opens before zeroconf, the monitor hooks and the banner: a stop
    # signal in that window used to kill the process (exit -15) instead of stopping it.
    cfg = make_cfg(tmp_path)
    for i, delay in enumerate((0.0, 0.0, 0.002, 0.005, 0.01, 0.03, 0.1)):
        p = _start(cfg)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", cfg.port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.0005)
            time.sleep(delay)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, f"run {i}: exit {p.returncode}\n{err.decode(errors='replace')[-2000:]}"
        assert b"Traceback" not in err
