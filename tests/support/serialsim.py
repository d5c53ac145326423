"""Serial simulators for tests: a PtyDevice on its own event loop thread, plus upsd probes.

The simulator runs in a background thread so that synchronous tests can drive a
C upsd + C driver (``realnut.c_upsd``) or a bridge (``bridge_server``) against it,
and script the device at the same time::

    from tests.support import realnut, serialsim
    from nutbridge.simulation.megatec import MegatecSimulator

    def test_x(tmp_path, bridge_server):
        with serialsim.running(lambda: MegatecSimulator(tmp_path / "ttyUPS0")) as sim:
            cfg = realnut.NutConfig(tmp_path / "nut")
            cfg.add_ups("ups", driver="nutdrv_qx", port=str(sim.link), pollinterval="1")
            srv = bridge_server(cfg)
            serialsim.wait_var(srv.port, "ups", "ups.status", "OL")
            sim.call(sim.device.unplug)                  # any method, on the sim's loop
            serialsim.wait_var(srv.port, "ups", "ups.status", None)   # DATA-STALE
            sim.call(sim.device.replug)
            elapsed = serialsim.wait_var(srv.port, "ups", "ups.status", "OL")
            assert b"Q1\\r" in sim.received()

Fault methods (``unplug``, ``garbage``...) and protocol knobs (``set_mains``...) touch
the device's loop state, so always go through :meth:`SimThread.call`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from nutbridge.simulation.model import SimUPS
from nutbridge.simulation.pty import PtyDevice

from . import realnut

D = TypeVar("D", bound=PtyDevice)
T = TypeVar("T")


class SimThread(Generic[D]):
    """A simulator built by ``factory`` and started on a private event loop thread."""

    def __init__(self, factory: Callable[[], D]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serialsim", daemon=True)
        self.device: D

    def start(self) -> SimThread[D]:
        self._thread.start()
        try:
            self.device = self.run(self._build())
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            raise
        return self

    async def _build(self) -> D:
        dev = self._factory()  # built on the loop: its asyncio objects belong to it
        await dev.start()
        return dev

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the simulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def submit(self, coro: Any) -> Future[Any]:
        """Start a coroutine on the simulator's loop without waiting (``cancel()`` stops it)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Call ``fn(*args)`` on the simulator's loop thread and return its result."""
        fut: Future[T] = Future()

        def go() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self._loop.call_soon_threadsafe(go)
        return fut.result(timeout)

    @property
    def link(self) -> Path:
        return self.device.link

    def received(self) -> list[bytes]:
        """A copy of every request the device got so far."""
        return self.call(lambda: list(self.device.received))

    def clear_received(self) -> None:
        self.call(self.device.received.clear)

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self.run(self.device.stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)
        self._loop.close()


@contextmanager
def running(factory: Callable[[], D]) -> Iterator[SimThread[D]]:
    """``with running(lambda: Sim(path)) as sim:`` the simulator, stopped on exit."""
    sim = SimThread(factory).start()
    try:
        yield sim
    finally:
        sim.stop()


def get_var(port: int, ups: str, var: str) -> str | None:
    """``GET VAR`` through a upsd (ours or NUT's); None on any ERR (DATA-STALE, ...)."""
    try:
        answer = realnut.query(port, f"GET VAR {ups} {var}", timeout=3).decode(errors="replace")
    except OSError:
        return None
    for line in answer.splitlines():
        if line.startswith(f"VAR {ups} {var} "):
            return line.split(" ", 3)[3].strip().strip('"')
    return None


def wait_var(port: int, ups: str, var: str, expect: str | Callable[[str | None], bool] | None,
             timeout: float = 20.0, interval: float = 0.1) -> float:
    """Poll until ``var`` equals ``expect`` (None: unavailable, e.g. stale; or a predicate).

    Returns the seconds it took; raises AssertionError with the last value on timeout.
    """
    start = time.monotonic()
    value: str | None = None
    while True:
        value = get_var(port, ups, var)
        ok = expect(value) if callable(expect) else value == expect
        if ok:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{ups} {var}: still {value!r} after {timeout}s (want {expect!r})")
        time.sleep(interval)


@asynccontextmanager
async def megatec_driver(sim: Any, **opts: str) -> AsyncIterator[Any]:
    """Our nutdrv_qx driver connected to ``sim`` (a MegatecSimulator) in this loop; closed
    on exit. ``opts`` are ups.conf options."""
    from nutbridge.drivers.qx.driver import MegatecDriver
    from nutbridge.state import Device

    cfg = {"driver": "nutdrv_qx", "port": str(sim.link), **opts}
    drv = MegatecDriver(Device("ups", driver_name=cfg["driver"]), cfg)
    await drv.connect()
    try:
        yield drv
    finally:
        await drv.close()


def _mains_back(m: SimUPS) -> None:
    m.set_mains(True)
    m.charge = 60.0


#: an outage as the serial and USB Megatec tests walk it: the status each step must show, and
#: what it does to the simulated UPS
OUTAGE: list[tuple[str, Callable[[SimUPS], None]]] = [
    ("OL", lambda m: None),
    ("OB", lambda m: m.set_mains(False)),
    ("OB LB", lambda m: setattr(m, "charge", 5.0)),
    ("OL", _mains_back),
]
