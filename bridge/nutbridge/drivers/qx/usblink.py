"""The qx family's USB link: a Megatec/Q1 UPS behind a USB bridge chip.

What :class:`~nutbridge.drivers.serial.SerialLink` is to a serial UPS: the driver hands it
one request and gets one reply line back (or None). Underneath:

* finding and claiming the device is the HID driver's (:func:`.usbhid.transport.open_device`:
  NUT's ``vendorid``/``productid``/``vendor``/``product``/``serial``/``bus``/``device``
  options, kernel driver detach, claim); with ``port = auto`` alone only devices a row of
  the subdriver table knows (:mod:`.usb`) are taken, with ``subdriver =`` any that matches;
* once found, the link remembers the device (:meth:`Matcher.same_device`: IDs and its
  strings, not bus or address) and later opens only that one, wherever it re-enumerates,
  as usbhid-ups does;
* each request runs one exchange of the subdriver (:mod:`.usb`) in a worker thread, its
  transfers on pyusb.

Errors: a transfer that times out or stalls is "no reply" (the driver asks again; a
stalled interrupt pipe is cleared first). Three overflowing interrupt reads in a row mean
a wedged bridge (NUT #598: the Cypress chip sends oversized reports until it is reset): the
device is reset and counts as lost. Any other USB error (ENODEV after an unplug, EIO,
EACCES...) raises :class:`DeviceError`: the driver marks its data stale, closes the link
and opens it again with backoff.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..base import DeviceError
from ..usbhid.transport import HidTransport, Matcher, UsbInfo, open_device
from .usb import (
    ControlIn,
    ControlOut,
    Endpoints,
    InterruptIn,
    InterruptOut,
    Outcome,
    Pause,
    Setup,
    Step,
    Subdriver,
    UsbId,
    choose,
    scan_langid,
)

try:  # pyusb is the optional "usb" extra (open_device says so when it is missing)
    import usb.core  # type: ignore[import-untyped]
    import usb.util  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised only without the extra
    usb = None

log = logging.getLogger(__name__)

T = TypeVar("T")

#: control transfer timeout while finding the device (its strings)
OPEN_TIMEOUT = 2.0
#: consecutive interrupt overflows that mean a wedged bridge
MAX_OVERFLOWS = 3


class UsbLink:
    """One Megatec-over-USB UPS, reopened by the driver after errors."""

    def __init__(self, matcher: Matcher, *, ids: tuple[UsbId, ...],
                 subdrivers: Mapping[str, type[Subdriver]], forced: str | None = None,
                 setup: Setup | None = None, noscanlangid: bool = False, label: str = "") -> None:
        self.matcher = matcher
        self.ids = ids
        self.subdrivers = dict(subdrivers)
        self.forced = forced  # ups.conf subdriver (None: chosen by the table)
        self.setup = setup or Setup()
        self.noscanlangid = noscanlangid
        self.label = label  # "UPS [name]" for the log
        #: pyusb backend (None: libusb-1.0); the driver sets it before each open
        self.backend: object | None = None
        #: multiplies every timeout and pause of the exchanges (tests run them faster)
        self.time_scale = 1.0
        #: "garbage" (replies the driver dropped), "timeouts" (requests without a reply),
        #: "reopens" (opens after the first)
        self.counters: dict[str, int] = {"garbage": 0, "timeouts": 0, "reopens": 0}
        self.info: UsbInfo | None = None
        self.subdriver: Subdriver | None = None
        self.endpoints = Endpoints()
        self._same: Matcher | None = None  # after the first open: only that device
        self._transport: HidTransport | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lost: str | None = None
        self._overflows = 0
        self._opens = 0
        self._refused: set[tuple[int, int, str | None, str | None]] = set()

    # ---- life cycle -----------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._lost is None

    def describe(self) -> str:
        """The device in use (or the matching options, before one was found)."""
        return self.info.describe() if self.info is not None else f"USB ({self.matcher.describe()})"

    def _row(self, info: UsbInfo) -> UsbId | None:
        return choose(self.ids, info.vendor_id, info.product_id, info.manufacturer, info.product)

    def _accept(self, info: UsbInfo) -> bool:
        if self.forced is not None:
            return True  # subdriver given: whatever the matching options take
        row = self._row(info)
        if row is None:
            return False
        if row.subdriver is None or row.subdriver not in self.subdrivers:
            key = (info.vendor_id, info.product_id, info.manufacturer, info.product)
            if key not in self._refused:  # once, not on every search
                self._refused.add(key)
                log.warning("%s: %s is a %s, which the bridge does not drive natively "
                            "(NUT's C driver can: nutbridge_hosted)", self.label, info.describe(),
                            row.what)
            return False
        return True

    def _subdriver(self, info: UsbInfo) -> type[Subdriver]:
        name = self.forced
        if name is None:
            row = self._row(info)
            assert row is not None and row.subdriver is not None  # _accept took it
            name = row.subdriver
        return self.subdrivers[name]

    async def open(self) -> None:
        """Find, claim and set up the UPS; DeviceError (listing what was seen) if it is not there."""
        if self._transport is not None:
            await self.close()
        first = self._same is None
        t = await open_device(self._same or self.matcher, backend=self.backend,
                              accept=self._accept if first else None, timeout=OPEN_TIMEOUT)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qx-usb")
        try:
            self.endpoints = await asyncio.get_running_loop().run_in_executor(
                pool, _endpoints, t)
            cls = self._subdriver(t.info)
            self.subdriver = cls(Setup(self.setup.langid_fix, self.setup.novendor, self.endpoints))
            self._transport, self._pool, self.info = t, pool, t.info
            self._lost = None
            self._overflows = 0
            if self.setup.langid_fix is not None and not self.noscanlangid:
                langid = await self._run(scan_langid())
                log.info("%s: first language ID the device offers: %s (langid_fix 0x%04x)",
                         self.label, "none" if langid is None else f"0x{langid:04x}",
                         self.setup.langid_fix)
        except BaseException:
            self._transport = self._pool = None
            pool.shutdown(wait=False)
            await t.close()
            raise
        if first:
            self._same = Matcher.same_device(t.info, self.matcher)
            log.info("%s: %s, subdriver %s", self.label, t.info.describe(), cls.name)
        else:
            log.info("%s: found again on bus %s device %s", self.label, t.info.bus, t.info.device)
        if self._opens:
            self.counters["reopens"] += 1
        self._opens += 1

    async def close(self) -> None:
        """Give the device back (interface released, kernel driver reattached); never raises."""
        pool, self._pool = self._pool, None
        t, self._transport = self._transport, None
        self._lost = self._lost or "closed"
        if pool is not None:  # an exchange in flight ends within its timeouts
            await asyncio.to_thread(pool.shutdown, wait=True)
        if t is not None:
            try:
                await t.close()
            except Exception:  # closing a vanished device must not raise
                log.debug("%s: close failed", self.label, exc_info=True)

    # ---- requests ---------------------------------------------------------------------
    async def transact(self, request: bytes) -> bytes | None:
        """Send one request, get its reply line (None: no reply). DeviceError if the
        device is gone or unusable."""
        sub = self.subdriver
        if not self.is_open or sub is None:
            raise DeviceError(f"USB UPS {self.describe()} is not open")
        reply = await self._run(sub.exchange(request))
        if reply is None:
            self.counters["timeouts"] += 1
        return reply

    async def _run(self, exchange: Generator[Step, Outcome, T]) -> T:
        pool, t = self._pool, self._transport
        if pool is None or t is None:
            raise DeviceError(f"USB UPS {self.describe()} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, self._drive, t.dev,
                                                                    exchange)
        except RuntimeError as exc:  # the pool was shut down by a concurrent close()
            raise DeviceError(f"USB UPS {self.describe()} is closed") from exc
        except DeviceError as exc:
            self._lost = str(exc)
            raise

    def _drive(self, dev: Any, exchange: Generator[Step, Outcome, T]) -> T:
        """Run an exchange's transfers (worker thread)."""
        try:
            step = next(exchange)
            while True:
                step = exchange.send(self._step(dev, step))
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            exchange.close()

    def _step(self, dev: Any, step: Step) -> Outcome:
        if isinstance(step, Pause):
            time.sleep(step.seconds * self.time_scale)
            return None
        ms = max(1, round(step.timeout * self.time_scale * 1000))  # 0 would be "forever"
        try:
            if isinstance(step, ControlOut):
                n = dev.ctrl_transfer(step.request_type, step.request, step.value, step.index,
                                      step.data, ms)
                return step.data[:n]
            if isinstance(step, ControlIn):
                return bytes(dev.ctrl_transfer(step.request_type, step.request, step.value,
                                               step.index, step.length, ms))
            if isinstance(step, InterruptOut):
                return step.data[:dev.write(step.endpoint, step.data, ms)]
            data = bytes(dev.read(step.endpoint, step.size, ms))
            self._overflows = 0
            return data
        except ValueError as exc:  # pyusb: the device has no such endpoint
            raise DeviceError(f"USB UPS {self.describe()}: {exc} (wrong subdriver?)") from exc
        except Exception as exc:
            if usb is None or not isinstance(exc, usb.core.USBError):
                raise
            return self._failed(dev, step, exc)

    def _failed(self, dev: Any, step: Step, exc: Exception) -> Outcome:
        code = errno.ETIMEDOUT if isinstance(exc, usb.core.USBTimeoutError) else \
            getattr(exc, "errno", None)
        if code == errno.ETIMEDOUT:
            return None
        if code == errno.EPIPE:  # stalled: refused, or a halted pipe to clear
            if isinstance(step, InterruptIn):
                try:
                    dev.clear_halt(step.endpoint)
                except Exception as exc2:
                    if not isinstance(exc2, usb.core.USBError):
                        raise
                    raise self._gone("clearing a halted pipe", exc2) from exc2
            return None
        if code == errno.EOVERFLOW and isinstance(step, InterruptIn):
            self._overflows += 1
            if self._overflows < MAX_OVERFLOWS:
                return None
            try:
                dev.reset()  # only a reset unwedges such a bridge
            except Exception as exc2:  # unplugged meanwhile, or not supported
                log.debug("%s: reset failed: %s", self.label, exc2)
            raise DeviceError(f"USB UPS {self.describe()}: interrupt reports overflow "
                              f"{self._overflows} times in a row; device reset") from exc
        raise self._gone(type(step).__name__, exc)

    def _gone(self, what: str, exc: BaseException) -> DeviceError:
        reason = getattr(exc, "strerror", None) or str(exc)
        if getattr(exc, "errno", None) == errno.ENODEV:
            return DeviceError(f"USB UPS {self.describe()} disconnected ({reason})")
        return DeviceError(f"USB UPS {self.describe()}: {what} failed: {reason}")


def _endpoints(t: HidTransport) -> Endpoints:
    """The claimed interface's interrupt endpoints (worker thread: pyusb blocks)."""
    found: dict[bool, tuple[int, int]] = {}
    try:
        intf = t.dev.get_active_configuration()[(t.interface, 0)]
        for ep in intf:
            if usb.util.endpoint_type(ep.bmAttributes) == usb.util.ENDPOINT_TYPE_INTR:
                is_in = usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN
                found.setdefault(is_in, (ep.bEndpointAddress, ep.wMaxPacketSize))
    except Exception as exc:
        if not isinstance(exc, usb.core.USBError):
            raise
        raise DeviceError(f"USB UPS {t.info.describe()}: cannot read its endpoints: {exc}") from exc
    return Endpoints(found.get(True), found.get(False))
