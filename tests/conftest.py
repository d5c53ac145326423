"""Shared fixtures for the bridge test suite (tests/).

* the repository root is put on ``sys.path`` (``from tests.support import realnut``);
* the report header names the Python and the NUT tools the interop tests run against;
* tests/support/skip_policy.py is registered: ``realnut.prerequisite`` markers, and under
  ``NUTBRIDGE_REQUIRE_INTEROP=1`` a session that skipped a test (reason not on its
  ALLOWED_SKIPS) fails;
* ``bridge_server``: start ``python -m nutbridge serve --config-dir DIR`` as a subprocess.

    def test_x(bridge_server):
        srv = bridge_server()                      # one dummy-ups UPS called "test"
        realnut.query(srv.port, "LIST UPS")

        cfg = NutConfig(tmp_path / "nut")          # or bring your own configuration
        cfg.add_ups("ups1", driver="dummy-ups", port="/path/x.dev")
        srv = bridge_server(cfg)

Every server still running at teardown is stopped with SIGTERM and must exit with 0.
When a test fails, each server's log (stdout + stderr) is attached to the report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.realnut import REQUIRE, NutConfig, nut_version, wait_port  # noqa: E402
from tests.support.skip_policy import register as register_skip_policy  # noqa: E402

DEFAULT_DEV = "ups.status: OL\nbattery.charge: 100\nups.mfr: NUT Bridge\nups.model: Test UPS\n"


def _pin_compat() -> None:
    """Reproduce the installed NUT release, so differential tests compare like with like."""
    from nutbridge.compat import COMPAT_ENV, SUPPORTED

    v = nut_version()
    if v in SUPPORTED and COMPAT_ENV not in os.environ:
        os.environ[COMPAT_ENV] = v


_pin_compat()


def pytest_configure(config: pytest.Config) -> None:
    # realnut.prerequisite markers; under NUTBRIDGE_REQUIRE_INTEROP=1 any skip not on
    # tests/support/skip_policy.py's ALLOWED_SKIPS fails the session
    register_skip_policy(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"NUT tools: {nut_version() or 'not installed'}; "
        f"NUTBRIDGE_REQUIRE_INTEROP={'1' if REQUIRE else 'unset'}",
    ]


@dataclass
class BridgeServer:
    """A running ``nutbridge serve``."""

    config: NutConfig
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    stopped: bool = False
    failed_start: bool = False  # its log is already in the failure message

    @property
    def port(self) -> int:
        return self.config.port

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and return its exit code (killed after `timeout`: -9)."""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


_SERVERS = pytest.StashKey[list[BridgeServer]]()


@pytest.fixture
def bridge_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., BridgeServer]]:
    """Factory: ``bridge_server(config=None, *, args=(), env=None, timeout=15.0)``.

    Without a config, one dummy-ups UPS ``test`` serving DEFAULT_DEV is configured.
    The config is written (``NutConfig.write``) and the server started with
    ``--config-dir <config.etc>`` and the config's NUT_* environment; the factory
    returns once the LISTEN port accepts connections.
    """
    servers = request.node.stash.setdefault(_SERVERS, [])

    def start(
        config: NutConfig | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> BridgeServer:
        if config is None:
            config = NutConfig(tmp_path / f"bridge{len(servers)}")
            dev = config.root / "test.dev"
            config.root.mkdir(parents=True, exist_ok=True)
            dev.write_text(DEFAULT_DEV)
            config.add_ups("test", driver="dummy-ups", port=str(dev))
        etc = config.write()
        penv = config.env()
        penv["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "bridge"), os.environ.get("PYTHONPATH", "")) if p
        )
        penv.update(env or {})
        log_path = config.run / f"nutbridge-{len(servers)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(etc), *args],
                env=penv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=config.root,
            )
        srv = BridgeServer(config, proc, log_path)
        servers.append(srv)
        deadline = timeout
        while True:
            if proc.poll() is not None:
                srv.stopped = srv.failed_start = True
                pytest.fail(f"nutbridge serve exited with {proc.returncode} before listening on "
                            f"port {config.port}; log:\n{srv.log()}", pytrace=False)
            try:
                wait_port(config.port, srv.host, timeout=0.25)
                return srv
            except TimeoutError:
                deadline -= 0.25
                if deadline <= 0:
                    srv.stop(signal.SIGKILL)
                    srv.failed_start = True
                    pytest.fail(f"nutbridge serve not listening on {srv.host}:{config.port} after "
                                f"{timeout}s; log:\n{srv.log()}", pytrace=False)

    yield start

    problems = []
    for srv in servers:
        if srv.stopped:
            continue  # the test stopped it and checks the exit code itself
        if srv.proc.poll() is not None:
            problems.append(f"nutbridge serve on port {srv.port} died during the test with "
                            f"{srv.proc.returncode}; log:\n{srv.log()}")
            continue
        rc = srv.stop()
        if rc != 0:
            problems.append(f"nutbridge serve on port {srv.port} exited with {rc} on SIGTERM "
                            f"(expected 0); log:\n{srv.log()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach every bridge_server log to the report of a failed test."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        no_servers: list[BridgeServer] = []
        servers = item.stash.get(_SERVERS, no_servers)
        for i, srv in enumerate(servers):
            if not srv.failed_start:
                report.sections.append((f"nutbridge serve log #{i} (port {srv.port})", srv.log()))
    return report
