"""A UPS on the far end of a pseudo-terminal, with fault injection.

The driver under test opens ``link`` (a symlink to the pty's slave side, e.g.
``/tmp/x/ttyUPS0``) exactly as it would open ``/dev/ttyS0``; this object sits on
the master side, feeds what the driver writes to :meth:`PtyDevice.handle` and
writes the replies back.

Framing: with ``terminator`` set (Megatec: ``b"\\r"``) ``handle`` gets one complete
request at a time, terminator included; with ``terminator = None`` (APC Smart) it
gets one byte at a time. ``handle`` returns the reply (or ``None`` for no reply).
Every request is appended to :attr:`received` (tests check that ``upscmd`` reaches
the device as the right bytes).

Faults, all callable at any time from the simulator's event loop thread:
``unplug()`` / ``replug()`` (the port disappears / comes back at the same path),
``garbage(n)`` (noise before the next reply), ``silence(on)`` (requests are still
recorded but never answered), ``slow(delay_per_byte)``, ``send_unsolicited()``
(APC's alert characters) and ``flood()`` (a babbling device: bytes as fast as the
driver's side takes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import termios
import tty
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)


class PtyDevice:
    """Base class of the protocol simulators; override :meth:`handle`."""

    #: end of a request (None: every byte is a request)
    terminator: bytes | None = b"\r"
    #: a request longer than this without terminator is dropped (a confused driver)
    max_request = 256

    def __init__(self, link: str | os.PathLike[str], *, delay_per_byte: float = 0.0,
                 seed: int | None = None) -> None:
        self.link = Path(link)
        self.received: list[bytes] = []
        self.delay_per_byte = delay_per_byte
        self.plugged = False
        self._master: int | None = None
        self._slave: int | None = None
        self._inbuf = bytearray()
        self._garbage = b""
        self._silent = False
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: asyncio.Queue[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set on every request (for tests that wait)
        self.flooded = 0  # bytes sent by flood()

    # ---- the protocol, to override ------------------------------------------
    def handle(self, data: bytes) -> bytes | None:
        """Answer one request (see the module docstring for framing)."""
        return None

    # ---- life cycle -----------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._out = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop())
        self._plug()

    async def stop(self) -> None:
        self._unplug()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _plug(self) -> None:
        master, slave = os.openpty()
        # raw before any driver opens it: no echo of our replies back to us, no CR/LF mapping
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        # we keep a slave fd open so the master never reads EIO while a driver reopens
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)  # atomic: a driver never sees a half-made link
        assert self._loop is not None
        self._loop.add_reader(master, self._read_ready)
        self._inbuf.clear()
        self.plugged = True

    def _unplug(self) -> None:
        self.plugged = False
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        if self._master is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._master)
            # closing the master hangs up the slave: the driver's next read fails (EIO)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
        if self._out is not None:
            while not self._out.empty():
                self._out.get_nowait()

    # ---- faults ---------------------------------------------------------------
    def unplug(self) -> None:
        """The cable is pulled: the pty goes away and the path disappears."""
        if self.plugged:
            log.info("simulator %s: unplugged", self.link)
            self._unplug()

    def replug(self) -> None:
        """The cable is back: a new pty behind the same path."""
        if not self.plugged:
            self._plug()
            log.info("simulator %s: plugged in again", self.link)

    def garbage(self, n: int, *, now: bool = False) -> None:
        """``n`` random bytes of line noise, before the next reply (or right away)."""
        noise = bytes(self._rng.randrange(256) for _ in range(n))
        if now:
            self._send(noise)
        else:
            self._garbage += noise

    def silence(self, on: bool) -> None:
        """Stop (True) or resume (False) answering; requests are still recorded."""
        self._silent = on

    def slow(self, delay_per_byte: float) -> None:
        """Send replies byte by byte with this delay (0: at once)."""
        self.delay_per_byte = delay_per_byte

    def send_unsolicited(self, data: bytes) -> None:
        """Bytes the UPS sends by itself (APC Smart alerts such as ``!`` or ``$``)."""
        self._send(data)

    async def flood(self, pattern: bytes, total: int | None = None) -> int:
        """Send ``pattern`` over and over as fast as the pty takes it, ``total`` bytes in
        all (None: until cancelled or unplugged); returns the bytes sent, also counted live
        in :attr:`flooded`. A partial write restarts the pattern."""
        assert self._loop is not None and pattern
        chunk = memoryview(pattern * max(1, 65536 // len(pattern)))
        sent = 0
        while (total is None or sent < total) and self._master is not None:
            fd = self._master
            try:
                n = os.write(fd, chunk[:len(chunk) if total is None else min(len(chunk), total - sent)])
            except BlockingIOError:
                ready: asyncio.Future[None] = self._loop.create_future()

                def writable(f: asyncio.Future[None] = ready) -> None:
                    if not f.done():
                        f.set_result(None)

                self._loop.add_writer(fd, writable)
                try:
                    await ready
                finally:
                    self._loop.remove_writer(fd)
                continue
            except OSError:
                break
            sent += n
            self.flooded += n
            await asyncio.sleep(0)
        return sent

    # ---- plumbing -------------------------------------------------------------
    def _read_ready(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: no slave fd open (should not happen, we hold one)
            log.debug("simulator %s: read: %s", self.link, exc)
            return
        for request in self._frames(data):
            self.received.append(request)
            self.changed.set()
            try:
                reply = self.handle(request)
            except Exception:
                log.exception("simulator %s: handler failed on %r", self.link, request)
                continue
            if reply is not None and not self._silent:
                self._send(self._garbage + reply)
                self._garbage = b""

    def _frames(self, data: bytes) -> list[bytes]:
        if self.terminator is None:
            return [data[i:i + 1] for i in range(len(data))]
        self._inbuf += data
        frames = []
        while (idx := self._inbuf.find(self.terminator)) >= 0:
            end = idx + len(self.terminator)
            frames.append(bytes(self._inbuf[:end]))
            del self._inbuf[:end]
        if len(self._inbuf) > self.max_request:
            self._inbuf.clear()
        return frames

    def _send(self, data: bytes) -> None:
        if data and self._out is not None and self.plugged:
            self._out.put_nowait(data)

    async def _write_loop(self) -> None:
        assert self._out is not None
        while True:
            data = await self._out.get()
            if self.delay_per_byte > 0:
                for i in range(len(data)):
                    self._write(data[i:i + 1])
                    await asyncio.sleep(self.delay_per_byte)
            else:
                self._write(data)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return  # unplugged meanwhile: the bytes are lost, as on a real cable
        try:
            os.write(self._master, data)
        except OSError as exc:  # full buffer (nobody reads) or hung up
            log.debug("simulator %s: write: %s", self.link, exc)
