"""Serial scan: ask each given port, briefly, whether a Voltronic, Megatec/Q1 or APC Smart
UPS answers (only the ports named: probing every tty could upset other equipment).

Each port is opened at 2400 baud 8N1 (what those protocols use) and sent only read-only
queries, each with a short timeout: ``QPI\\r`` (Voltronic: ``(PI<nn>``), ``Q1\\r`` (Megatec:
``(`` and eight numeric fields), then ``Y`` (APC Smart: ``SM``). None of these letters
changes anything on the other protocols' units (APC's ``Q``/``P``/``I``/``1`` are reads).
:func:`classify` (sans-IO) turns the answers into the section: ``nutdrv_qx`` with
``protocol = "voltronic"``, ``nutdrv_qx`` with ``protocol = "megatec"`` (alternately
``blazer_ser``, which takes no ``protocol``), or ``apcsmart``. The protocol is named because
it is known by then, and NUT 2.8.5's nutdrv_qx otherwise spends some 30 s detecting it.
"""

from __future__ import annotations

import asyncio
import re

from .model import Found, Option

_PI = re.compile(r"^\(PI\d\d\s*$")
_Q1 = re.compile(r"^\((?:[\d.]+ ){7}[01]{8}\s*$")
_SM = re.compile(r"^\s*SM$")


def classify(port: str, qpi: bytes | None, q1: bytes | None, y: bytes | None) -> Found | None:
    """The section for ``port`` from the answers to QPI, Q1 and Y (None: no answer)."""
    def text(b: bytes | None) -> str:
        return (b or b"").decode("ascii", errors="replace").strip("\r\n")

    if _PI.match(text(qpi)):
        return Found("serial", "nutdrv_qx", port, (Option("protocol", "voltronic"),),
                     info={"answer": text(qpi)})
    if _Q1.match(text(q1)):
        return Found("serial", "nutdrv_qx", port, (Option("protocol", "megatec"),),
                     alternates=("blazer_ser",), info={"answer": text(q1)})
    if _SM.match(text(y)):
        return Found("serial", "apcsmart", port, info={"answer": "SM"})
    return None


async def probe(port: str, timeout: float) -> Found | None:
    """Ask ``port``; None when it cannot be opened or nothing known answers in time."""
    from ..drivers.base import DeviceError
    from ..drivers.serial import SerialLink

    link = SerialLink(port, baudrate=2400)
    try:
        await link.open()
    except (DeviceError, OSError, ValueError):
        return None

    async def ask(data: bytes, terminator: bytes, want: re.Pattern[str]) -> bytes | None:
        """Send ``data``; the first line matching ``want`` within the timeout, else None.
        Lines that do not match are late answers to earlier queries (an APC answers each
        letter of ``QPI``): skipped, not mistaken for this answer."""
        await link.flush_input()
        await link.write(data)
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                line = await link.read_until(terminator, left, max_len=256)
            except DeviceError:
                return None
            if want.match(line.decode("ascii", errors="replace").strip("\r\n")):
                return line
        return None

    try:
        qpi = await ask(b"QPI\r", b"\r", _PI)
        if qpi is not None:
            return classify(port, qpi, None, None)
        q1 = await ask(b"Q1\r", b"\r", _Q1)
        if q1 is not None:
            return classify(port, None, q1, None)
        return classify(port, None, None, await ask(b"Y", b"\n", _SM))
    except (DeviceError, OSError):
        return None
    finally:
        await link.close()


async def scan_serial(ports: list[str], *, timeout: float = 1.0, concurrency: int = 8) -> list[Found]:
    """Probe each of ``ports`` (at most ``concurrency`` at once); results in port order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(port: str) -> Found | None:
        async with gate:
            return await probe(port, timeout)

    results = await asyncio.gather(*(one(p) for p in ports))
    return [f for f in results if f is not None]
