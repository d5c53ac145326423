"""Serial transport shared by the serial driver families (Megatec/Q1, APC Smart).

:class:`SerialLink` wraps one port (a real tty, a USB-serial adapter, or a pty
from :mod:`nutbridge.simulation`) behind a few request/response helpers. It
never retries by itself: every failure raises :class:`DeviceError` and the
driver's run loop (``base.Driver.run``) closes the link, marks the data stale
and reopens it with backoff. So a link object lives as long as its driver, and
``open()`` may be called again after ``close()``.

pyserial-asyncio-fast is imported lazily: it is an optional dependency
(``pip install 'nutbridge-ups[serial]'``) only those with serial UPSes need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .base import DeviceError

log = logging.getLogger(__name__)

_PARITIES = {"N": "N", "E": "E", "O": "O", "M": "M", "S": "S"}
#: Most input the link keeps unread; beyond it the oldest bytes are dropped (as a UART
#: overruns). 8x the longest frame a serial driver reads (APC Smart: 512 bytes), and at
#: 2400 baud 17 s of input, so only a flood (a pty, noise at a wrong speed) ever hits it.
MAX_BUFFER = 4096


class SerialTimeout(DeviceError):
    """The device did not answer in time (a :class:`DeviceError`: the port may be fine)."""


class _Receiver(asyncio.Protocol):
    """Collects what the transport reads; readers wait on ``changed``."""

    def __init__(self, link: SerialLink) -> None:
        self.link = link

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link._receiver is self:
            buf = link._buffer
            buf += data
            if len(buf) > MAX_BUFFER:
                del buf[:len(buf) - MAX_BUFFER]
                if not link._overrun:  # count an overrun once, not once per chunk
                    link._overrun = True
                    link.counters["garbage"] += 1
            link._changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        # the transport reports a close late (after an executor flush): never let an
        # old connection's end mark a reopened port as lost
        if self.link._receiver is self:
            self.link._lost = str(exc) if exc else "port closed"
            self.link._changed.set()


class SerialLink:
    """One serial port (a tty, or a pty from the simulators), reopened by the driver after errors."""

    def __init__(self, port: str, *, baudrate: int = 2400, bytesize: int = 8, parity: str = "N",
                 stopbits: int = 1, dtr: bool | None = None, rts: bool | None = None,
                 exclusive: bool = True) -> None:
        if parity.upper()[:1] not in _PARITIES:
            raise ValueError(f"parity must be one of N, E, O, M, S (not {parity!r})")
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity.upper()[:1]
        self.stopbits = stopbits
        self.dtr = dtr
        self.rts = rts
        #: flock the port like NUT's drivers (their ``nolock`` flag turns it off), so a
        #: second driver on the same port fails clearly instead of stealing replies
        self.exclusive = exclusive
        #: "garbage" (frames a driver dropped), "timeouts", "reopens" (opens after the first)
        self.counters: dict[str, int] = {"garbage": 0, "timeouts": 0, "reopens": 0}
        self._transport: Any = None  # serial_asyncio_fast.SerialTransport
        self._buffer = bytearray()
        self._overrun = False  # bytes were dropped since the reader last took input
        self._changed = asyncio.Event()
        self._lost: str | None = None
        self._receiver: _Receiver | None = None
        self._opens = 0
        self._line_warned = False

    # ---- life cycle ---------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Bytes received and not read yet (at most :data:`MAX_BUFFER`)."""
        return len(self._buffer)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._lost is None

    async def open(self) -> None:
        """Open the port; raises DeviceError (with the port in the message) if it cannot."""
        if self._transport is not None:
            await self.close()
        try:
            import serial_asyncio_fast
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise DeviceError("serial drivers need pyserial-asyncio-fast "
                              "(pip install 'nutbridge-ups[serial]')") from exc
        loop = asyncio.get_running_loop()
        self._buffer.clear()
        self._overrun = False
        self._changed = asyncio.Event()
        self._lost = None
        receiver = self._receiver = _Receiver(self)
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: receiver, self.port, baudrate=self.baudrate,
                bytesize=self.bytesize, parity=self.parity, stopbits=self.stopbits,
                # no flow control: UPS cables use DTR/RTS as power or mode lines
                xonxoff=False, rtscts=False, dsrdtr=False, exclusive=self.exclusive)
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            reason = _reason(exc)
            if "lock" in reason:
                reason = "it is locked by another process (another driver?)"
            raise DeviceError(f"cannot open serial port {self.port}: {reason}") from exc
        self._transport = transport
        if self._opens:
            self.counters["reopens"] += 1
        self._opens += 1
        self._set_lines(transport.serial)

    def _set_lines(self, ser: Any) -> None:
        # Some cables power their level shifter from DTR/RTS, others use them as a
        # "cable detect"/"shutdown" line. A pty or some USB adapters refuse the ioctl:
        # that must not stop the driver, and must not fill the log on every reopen.
        for name, value in (("dtr", self.dtr), ("rts", self.rts)):
            if value is None:
                continue
            try:
                setattr(ser, name, value)
            except (OSError, ValueError) as exc:
                if not self._line_warned:
                    self._line_warned = True
                    log.warning("serial port %s: cannot set %s=%d (%s); continuing without it",
                                self.port, name.upper(), value, _reason(exc))

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        self._receiver = None
        if transport is None:
            return
        try:
            # abort, not close: close() would drain output first, which can block on a dead port
            transport.abort()
            ser = transport.serial
            if ser is not None and ser.is_open:
                ser.close()
        except Exception as exc:  # closing a dead port must not raise
            log.debug("serial port %s: close: %s", self.port, exc)
        self._lost = self._lost or "port closed"
        self._changed.set()

    # ---- I/O ----------------------------------------------------------------
    def _check(self) -> None:
        if self._transport is None:
            raise DeviceError(f"serial port {self.port} is not open")
        if self._lost is not None:
            raise DeviceError(f"serial port {self.port}: {self._lost}")

    async def write(self, data: bytes) -> None:
        # one loop pass first: a hung-up port shows up as a failed read (quietly) rather
        # than as a failed write, which asyncio would log with a traceback
        await asyncio.sleep(0)
        self._check()
        try:
            self._transport.write(data)
        except (OSError, ValueError) as exc:
            raise DeviceError(f"serial port {self.port}: write failed: {_reason(exc)}") from exc
        await asyncio.sleep(0)
        self._check()

    async def _wait(self, deadline: float) -> bool:
        """Wait for more data; False at the deadline. Raises DeviceError if the port died."""
        if self._lost is not None:
            self._check()
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self._changed.clear()
        try:
            async with asyncio.timeout(left):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _timeout(self, what: str, timeout: float) -> SerialTimeout:
        self.counters["timeouts"] += 1
        return SerialTimeout(f"serial port {self.port}: no {what} within {timeout:g}s")

    async def read_until(self, terminator: bytes, timeout: float, max_len: int = 512) -> bytes:
        """Read up to and including ``terminator``. DeviceError on timeout/EOF/oversize."""
        self._check()
        max_len = min(max_len, MAX_BUFFER)
        deadline = time.monotonic() + timeout
        while True:
            idx = self._buffer.find(terminator)
            if idx >= 0 and idx + len(terminator) <= max_len:
                end = idx + len(terminator)
                frame = bytes(self._buffer[:end])
                del self._buffer[:end]
                self._overrun = False
                return frame
            if len(self._buffer) >= max_len:
                # a runaway line (noise, wrong baud rate): drop it so the next poll starts clean
                self._buffer.clear()
                self._overrun = False
                self.counters["garbage"] += 1
                raise DeviceError(f"serial port {self.port}: no {terminator!r} within {max_len} bytes")
            if self._lost is not None:
                self._check()
            if not await self._wait(deadline):
                raise self._timeout(f"reply ending in {terminator!r}", timeout)

    async def read_exactly(self, n: int, timeout: float) -> bytes:
        if not 0 <= n <= MAX_BUFFER:
            raise ValueError(f"read_exactly: {n} bytes is more than the link keeps ({MAX_BUFFER})")
        self._check()
        deadline = time.monotonic() + timeout
        while len(self._buffer) < n:
            if not await self._wait(deadline):
                raise self._timeout(f"{n}-byte reply", timeout)
        frame = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._overrun = False
        return frame

    async def read_available(self, timeout: float) -> bytes:
        """Whatever is buffered or arrives within ``timeout`` (b"" if nothing; at most
        :data:`MAX_BUFFER` bytes, the newest)."""
        self._check()
        if not self._buffer:
            await self._wait(time.monotonic() + timeout)
            if not self._buffer:
                self._check()
        data = bytes(self._buffer)
        self._buffer.clear()
        self._overrun = False
        return data

    async def flush_input(self) -> None:
        """Drop unread input (a late reply, line noise) before a new request."""
        self._check()
        await asyncio.sleep(0)  # collect what the event loop already has
        try:
            self._transport.serial.reset_input_buffer()
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # not every port type supports tcflush; the local buffer is what matters
        self._buffer.clear()
        self._overrun = False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
