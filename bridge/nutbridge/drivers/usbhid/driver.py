"""USB HID Power Device Class UPSes (NUT's ``usbhid-ups``).

The life cycle is the base driver's (connect, update, wait, reconnect with
backoff); this module wires the HID pieces together:

* ``transport`` finds the device (NUT's matching options), claims it and
  does the control transfers; ``descriptor`` parses its report descriptor;
  ``subdrivers`` picks the vendor table (written in ``table``'s vocabulary) and
  ``mapper`` turns report bytes into NUT variables (``status`` composes
  ``ups.status``), and SET VAR / INSTCMD into report writes. This module only does
  the I/O those sans-IO pieces ask for and publishes what they return.
* :meth:`UsbHid.update` GETs the Feature reports: every ``pollfreq`` seconds
  all of them, otherwise (every ``pollinterval``) only the ones holding status
  and other quick rows, as NUT does.
* A reader task reads the interrupt IN endpoint and applies Input reports the
  moment they arrive, so mains loss shows as ``OB`` without waiting for a
  poll. ``pollonly`` turns it off; ``interruptonly`` turns the periodic GETs off.
* Unplugged / re-enumerated: any transfer error raises :class:`DeviceError`,
  the base marks the data stale and reconnects. The first match is remembered
  (vendor/product IDs, serial, manufacturer and product strings) and only that
  device is accepted later, wherever it re-appears (bus and address may change).
* ``port = /path/to/dump.dev``: replay a NUT debug dump (a DDL ``.dev`` file
  with the report descriptor and ``Report[get]`` lines) through a fake libusb
  backend instead of hardware.
* A report descriptor we refuse (malformed, or beyond the parser's limits) is
  logged as ``UPS [x]: bad HID report descriptor: ...`` and retried once a
  minute: the device stays unavailable, the bridge keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status, option_number
from .descriptor import HIDParseError, parse
from .mapper import Mapper
from .subdrivers import choose_subdriver, subdrivers
from .table import LocalSet, Sleep, Step, Write
from .usages import names_for

if TYPE_CHECKING:  # pyusb is optional: the transport is imported when a driver starts
    from .transport import HidTransport, Matcher, UsbInfo

log = logging.getLogger(__name__)

#: pyusb backend every usbhid-ups driver of this process uses (None: pyusb's libusb1
#: default). Tests and embedders install a fake one here; dump replays bring their own.
backend: object | None = None

DEFAULT_POLLFREQ = 30.0
#: retry delay once the device has been found with a descriptor we refuse
BAD_DEVICE_RETRY = 60.0
#: control transfer timeout: a UPS answers in milliseconds; three timeouts in a row mean it
#: hung, which must show as stale well within upsd's MAXAGE (15 s)
CONTROL_TIMEOUT = 2.0
#: interrupt IN read timeout of one reader step (the reader loops; short so close() is prompt)
INTERRUPT_TIMEOUT = 0.5
OFF_WORDS = frozenset({"no", "off", "false", "0", "disabled"})


@dataclass(frozen=True, slots=True)
class Identity:
    """What makes "the same UPS" across re-enumerations (not bus or address)."""

    vendor_id: int
    product_id: int
    serial: str | None
    manufacturer: str | None
    product: str | None

    @classmethod
    def of(cls, info: UsbInfo) -> Identity:
        return cls(info.vendor_id, info.product_id, _norm(info.serial), _norm(info.manufacturer),
                   _norm(info.product))

    def accepts(self, info: UsbInfo) -> bool:
        if (info.vendor_id, info.product_id) != (self.vendor_id, self.product_id):
            return False
        if self.serial is not None:
            return _norm(info.serial) == self.serial
        # no serial to go by: the same model strings (two identical serial-less units
        # on one host cannot be told apart, as with NUT)
        return (_norm(info.manufacturer), _norm(info.product)) == (self.manufacturer, self.product)

    def __str__(self) -> str:
        text = f"{self.vendor_id:04x}:{self.product_id:04x}"
        return text + (f" serial {self.serial}" if self.serial else "")


def _norm(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _flag(config: Mapping[str, str], name: str) -> bool:
    """NUT's flags are set by being present; "no"/"off"/"false" here turn one off."""
    value = config.get(name)
    return value is not None and value.strip().lower() not in OFF_WORDS


def _interruptsize(config: Mapping[str, str]) -> int:
    """ups.conf's (or the subdriver's default) ``interruptsize``: bytes, 0 = not set."""
    size = config.get("interruptsize", "")
    try:
        value = int(size) if size else 0
    except ValueError:
        raise ConfigError(f"interruptsize must be a number of bytes, not {size!r}") from None
    if value < 0 or value > 4096:
        raise ConfigError(f"interruptsize must be 1..4096, not {size!r}")
    return value


def _pollfreq(config: Mapping[str, str], default: float) -> float:
    """ups.conf's (or the subdriver's default) ``pollfreq``: seconds, > 0."""
    return option_number(config, "pollfreq", default, above=True, what="a number of seconds")


class UsbHid(Driver):
    names = ("usbhid-ups",)
    options = frozenset({
        "vendorid", "productid", "vendor", "product", "serial", "bus", "device", "subdriver",
        "pollfreq", "pollonly", "interruptonly", "interruptsize", "ondelay", "offdelay",
        "onlinedischarge", "onlinedischarge_onbattery", "onlinedischarge_calibration",
        "disable_fix_report_desc", "synchronous",
        # PowerCOM's delay formats (subdrivers/powercom.py)
        "powercom_sdcmd_byte_order_fallback", "powercom_sdcmd_discrete_delay",
    })
    version = "0.47"  # the NUT usbhid-ups revision (2.8.0) whose behaviour this follows

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        try:
            from .transport import Matcher
        except ImportError as exc:  # pyusb is the optional "usb" extra
            raise ConfigError(f"usbhid-ups needs pyusb: pip install 'nutbridge-ups[usb]' ({exc})") from None
        self.port = self.config.get("port", "auto") or "auto"
        self.replay: Path | None = None
        if self.port != "auto":
            path = Path(self.port)
            if not path.is_absolute() and "_confdir" in self.config:
                path = Path(self.config["_confdir"]) / path
            if not path.is_file():
                raise ConfigError(f"port must be 'auto' or a NUT debug dump (.dev) to replay; "
                                  f"{str(path)!r} is not a file")
            self.replay = path
        self.matcher: Matcher = Matcher.from_config(self.config)
        forced = self.config.get("subdriver")
        if forced:
            try:
                choose_subdriver(0, 0, forced)
            except KeyError as exc:
                raise ConfigError(str(exc.args[0])) from None
        self.pollfreq_opt = _pollfreq(self.config, 0) or None
        self.pollfreq = self.pollfreq_opt or DEFAULT_POLLFREQ
        self.pollonly = _flag(self.config, "pollonly")
        self.interruptonly = _flag(self.config, "interruptonly") and not self.pollonly
        self.interruptsize = _interruptsize(self.config)
        # a replugged UPS re-enumerates within a few seconds: look for it often
        self.retry_max = 2.0
        self.identity: Identity | None = None
        self.transport: HidTransport | None = None
        self.mapper: Mapper | None = None
        self.info: UsbInfo | None = None
        self._fake_backend: object | None = None
        self._reports: dict[tuple[str, int], bytes] = {}
        self._strings: dict[int, str] = {}
        self._published: set[str] = set()
        self._rw: set[str] = set()
        self._next_full = 0.0
        self._meta_published = False
        self._reader: asyncio.Task[None] | None = None
        self._reader_error: BaseException | None = None
        self._lock = asyncio.Lock()
        self.interrupt_reports = 0

    # ---- finding the device ------------------------------------------------------------
    def _backend(self) -> object | None:
        if self.replay is None:
            return backend
        if self._fake_backend is None:
            from ...simulation.fakeusb import FakeBackend
            from ...simulation.usbdump import DumpError, fake_device_from_dump, load_dump

            try:
                dump = load_dump(self.replay)
            except (DumpError, OSError) as exc:
                raise DeviceError(f"cannot replay {self.replay}: {exc}") from None
            self._fake_backend = FakeBackend([fake_device_from_dump(dump)])
        return self._fake_backend

    def _accept(self, info: UsbInfo) -> bool:
        if self.identity is not None:  # reconnecting: only the UPS we had
            return self.identity.accepts(info)
        if self.replay is not None or self.config.get("vendorid") or self.config.get("subdriver"):
            return True  # the user named the device (or the driver): take what matches
        # port = auto alone: only devices a vendor subdriver claims (not keyboards, mice...)
        return any(s.claims(info.vendor_id, info.product_id, manufacturer=info.manufacturer,
                            product=info.product, productid_option=bool(self.config.get("productid")))
                   for s in subdrivers() if not s.accepts_unknown)

    async def connect(self) -> None:
        from .transport import open_device

        t = await open_device(self.matcher, backend=self._backend(), accept=self._accept,
                              timeout=CONTROL_TIMEOUT)
        try:
            info = t.info
            sub = choose_subdriver(info.vendor_id, info.product_id, self.config.get("subdriver"),
                                   manufacturer=info.manufacturer, product=info.product,
                                   productid_option=bool(self.config.get("productid")))
            raw = await t.report_descriptor()
            # subdriver defaults (CPS delays and pollfreq, pollonly for some APC) under ups.conf's
            options = {**sub.default_options(info.product_id), **self.config}
            if "onlinedischarge" in options:  # NUT's deprecated spelling
                options.setdefault("onlinedischarge_onbattery", options["onlinedischarge"])
            try:
                mapper = Mapper(sub, parse(raw, names=names_for(sub.key)), options, info=info)
            except HIDParseError as exc:
                # the same device will send the same descriptor: no point retrying fast
                self.retry_min = self.retry_max = BAD_DEVICE_RETRY
                raise DeviceError(f"bad HID report descriptor: {exc} ({info.describe()})") from None
            if not mapper.rows:
                # nothing of the Power Device pages: a keyboard picked by vendorid, or junk
                self.retry_min = self.retry_max = BAD_DEVICE_RETRY
                raise DeviceError(f"bad HID report descriptor: no UPS data in it "
                                  f"({len(raw)} bytes, {len(mapper.desc.fields)} fields)")
        except BaseException:
            await t.close()
            raise
        self.retry_min, self.retry_max = 0.5, 2.0
        if self.identity is None:
            self.identity = Identity.of(info)
            log.info("UPS [%s]: %s %s (%s) on bus %s device %s, subdriver %s", self.device.name,
                     info.manufacturer or "?", info.product or "?", self.identity, info.bus,
                     info.device, sub.version_data)
        elif self.reconnects or self.failures:
            log.info("UPS [%s]: found again on bus %s device %s", self.device.name, info.bus, info.device)
        for warning in mapper.desc.warnings:
            log.debug("UPS [%s]: report descriptor: %s", self.device.name, warning)
        self.transport, self.mapper, self.info = t, mapper, info
        self.pollfreq = self.pollfreq_opt or _pollfreq(options, DEFAULT_POLLFREQ)
        self.pollonly = _flag(options, "pollonly")
        self.interruptonly = _flag(options, "interruptonly") and not self.pollonly
        self.interruptsize = _interruptsize(options)  # PowerCOM 0d9f:0001: 8 unless ups.conf says
        self._reports.clear()
        self._strings.clear()
        self._next_full = 0.0
        self._reader_error = None
        self._meta_published = False  # until the first poll of this connection is published
        self._publish_static()

    def _publish_static(self) -> None:
        dev = self.device
        with dev.batch():
            self.publish_driver_info()
            dev.set("driver.parameter.pollfreq", f"{self.pollfreq:g}")
            dev.set("driver.parameter.pollinterval", f"{self.pollinterval:g}")
            dev.set("driver.parameter.port", self.port)
            dev.set("driver.parameter.synchronous", self.config.get("synchronous", "auto"))
            dev.set("driver.version.usb", _pyusb_version())
            dev.set("device.type", "ups")
            self.publish_core_extras()

    # ---- polling -------------------------------------------------------------------------
    def _t(self) -> HidTransport:
        if self.transport is None:
            raise DeviceError("USB device closed")
        return self.transport

    def _m(self) -> Mapper:
        if self.mapper is None:
            raise DeviceError("USB device closed")
        return self.mapper

    async def _get(self, kind: str, rid: int) -> bytes | None:
        t, m = self._t(), self._m()
        length = m.report_length(kind, rid)
        if kind == "Feature":
            return await t.get_feature(rid, length)
        return await t.get_input(rid, length)

    async def update(self) -> None:
        m = self._m()
        first = not self._meta_published
        now = time.monotonic()
        full = now >= self._next_full
        if self.interruptonly and not first:
            polls: list[tuple[str, int]] = []
        else:
            polls = m.poll_reports(quick_only=not full)
        async with self._lock:
            fresh: dict[tuple[str, int], bytes] = {}
            for key in polls:
                data = await self._get(*key)
                if data is not None:  # None: STALL, this report is not supported
                    fresh[key] = data
            self._reports.update(fresh)
            for idx in m.string_indices(self._reports):
                if idx and idx not in self._strings:
                    text = await self._t().string(idx)
                    self._strings[idx] = text if text is not None else ""
            self._publish(m.apply(fresh, self._strings))
        if full:
            self._next_full = now + self.pollfreq
        if first:
            self._meta_published = True
            self._publish_meta()
            self._start_reader()

    def _publish(self, values: Mapping[str, str]) -> None:
        dev = self.device
        with dev.batch():
            for name, value in values.items():
                dev.set(name, value)
            for gone in self._published - values.keys():
                if gone not in self._rw:
                    dev.delete(gone)
            self._published = set(values)

    def _publish_meta(self) -> None:
        """RW flags, enums, ranges and commands: once per connection (after the first poll)."""
        m, dev = self._m(), self.device
        with dev.batch():
            self._rw = set()
            for name, rw in m.rw_vars().items():
                var = dev.get(name)
                if var is None:
                    continue
                self._rw.add(name)
                dev.set(name, var.value, rw=True, string=rw.string, aux=rw.length if rw.string else None)
                if rw.enums:
                    dev.set_enums(name, list(rw.enums))
                for lo, hi in rw.ranges:
                    dev.add_range(name, lo, hi)
            for cmd in m.commands():
                dev.add_cmd(cmd)

    # ---- interrupt IN ----------------------------------------------------------------------
    def _start_reader(self) -> None:
        if self.pollonly or self._reader is not None:
            return
        self._reader = asyncio.get_running_loop().create_task(
            self._read_interrupts(), name=f"usbhid-interrupt-{self.device.name}")

    async def _read_interrupts(self) -> None:
        m, t = self._m(), self._t()
        size = self.interruptsize or max(
            [t.interrupt_packet_size, *(m.desc.report_length("Input", rid)
                                        for rid in m.desc.report_ids("Input"))])
        try:
            while True:
                data = await t.read_interrupt(size, INTERRUPT_TIMEOUT)
                if not data:
                    continue
                self.on_input_report(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # DeviceError (unplugged) or a mapping failure: reconnect
            self._reader_error = exc
            self.poke()

    def on_input_report(self, data: bytes) -> None:
        """Apply one Input report from the interrupt endpoint at once."""
        m = self._m()
        rid = data[0] if m.desc.uses_report_ids else 0
        key = ("Input", rid)
        self.interrupt_reports += 1
        self._reports[key] = data
        self._publish(m.apply({key: data}, self._strings))
        self.device.heard()

    async def wait(self, period: float | None = None) -> None:
        # the reader task wakes this through poke() when it fails: raise its error here, in the
        # life cycle, so the base reconnects
        self._check_reader()
        await super().wait(period)
        self._check_reader()

    def _check_reader(self) -> None:
        err = self._reader_error
        if err is not None:
            self._reader_error = None
            if isinstance(err, DeviceError | OSError | TimeoutError):
                raise err
            raise DeviceError(f"interrupt report handling failed: {err!r}") from err

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except BaseException:  # close must not raise
                pass
        t, self.transport = self.transport, None
        self.mapper = None
        if t is not None:
            try:
                await t.close()
            except Exception:
                log.debug("usbhid: close failed", exc_info=True)

    # ---- commands and writes ------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        m = self.mapper
        if m is None:
            return Status.FAILED if cmd in self.device.commands() else Status.UNKNOWN
        current = {v.name: v.value for v in self.device.variables()}
        steps = m.instcmd(cmd, param, current)
        return await self._run_steps(f"INSTCMD {cmd}", steps)

    async def setvar(self, name: str, value: str) -> Status:
        m = self.mapper
        if m is None:
            return Status.FAILED if self.device.get(name) is not None else Status.UNKNOWN
        return await self._run_steps(f"SET {name}", m.setvar(name, value))

    async def _run_steps(self, what: str, steps: list[Step] | Status) -> Status:
        if isinstance(steps, Status):
            return steps
        try:
            async with self._lock:
                for step in steps:
                    if isinstance(step, Sleep):
                        await asyncio.sleep(step.seconds)
                    elif isinstance(step, LocalSet):
                        self.device.set(step.var, step.value)
                    elif isinstance(step, Write):
                        await self._write(step)
        except (DeviceError, OSError, TimeoutError) as exc:
            log.warning("UPS [%s]: %s failed: %s", self.device.name, what, exc)
            return Status.FAILED
        # a full refresh shows the effect (NUT's data_has_changed)
        self._next_full = 0.0
        self.poke()
        return Status.HANDLED

    async def _write(self, step: Write) -> None:
        m, t = self._m(), self._t()
        rid = step.field.report_id
        current = await t.get_feature(rid, m.desc.report_length("Feature", rid))
        data = m.render_write(step, current)
        await t.set_feature(rid, data)
        if current is not None:
            self._reports[("Feature", rid)] = data


def _pyusb_version() -> str:
    try:
        import usb  # type: ignore[import-untyped]

        return f"pyusb {usb.__version__}"
    except Exception:
        return "pyusb"


# ---- udev rules ------------------------------------------------------------------------------

#: Where the udev rules take their IDs from: for every native driver family that opens USB
#: devices itself, ``"module:function"`` of a function returning (vendor, product) or
#: (vendor, product, label) tuples (product None: every product of the vendor). A family
#: adds its line here; the functions are loaded by name, as the driver registry loads
#: drivers, so this family imports no other.
USB_ID_SOURCES: dict[str, str] = {
    "usbhid-ups": "nutbridge.drivers.usbhid.subdrivers:usb_ids",
    "nutdrv_qx, blazer_usb": "nutbridge.drivers.qx.usb:usb_ids",
}

UDEV_HEADER = """\
# udev rules for NUT Bridge's USB drivers (usbhid-ups, and nutdrv_qx/blazer_usb for Megatec
# over USB): give the bridge's group access to the UPSes they take, so it needs no root.
# Generated from the drivers' tables by `nutbridge udev-rules`
# (bridge/nutbridge/drivers/usbhid/driver.py); do not edit by hand.
#
# Install: copy to /etc/udev/rules.d/, then `udevadm control --reload-rules` and
# `udevadm trigger --subsystem-match=usb` (or replug the UPS). The group is "nut", as
# for NUT's own packages; create it (`groupadd --system nut`) and run the bridge in it.

ACTION!="add|change", GOTO="nut_bridge_usbups_end"
SUBSYSTEM!="usb", GOTO="nut_bridge_usbups_end"
"""
UDEV_FOOTER = '\nLABEL="nut_bridge_usbups_end"\n'


def usb_ids() -> list[tuple[int, int | None, str]]:
    """(vendor, product or None, label) of every USB device a native driver takes, from
    :data:`USB_ID_SOURCES` in order, each VID:PID once (the first source names it)."""
    import importlib

    out: list[tuple[int, int | None, str]] = []
    seen: set[tuple[int, int | None]] = set()
    for family, target in USB_ID_SOURCES.items():
        module, _, function = target.partition(":")
        for entry in getattr(importlib.import_module(module), function)():
            vid, pid = int(entry[0]), None if entry[1] is None else int(entry[1])
            label = str(entry[2]) if len(entry) > 2 else family
            if (vid, pid) not in seen:
                seen.add((vid, pid))
                out.append((vid, pid, label))
    return out


def udev_rules(group: str = "nut") -> str:
    """The udev rules file: one rule per VID:PID of :func:`usb_ids` (whole vendors as ``*``),
    grouped under a comment naming the driver and subdriver that take them."""
    lines = [UDEV_HEADER]
    label = None
    for vid, pid, name in usb_ids():
        if name != label:
            label = name
            lines.append(f"\n# {name}\n")
        product = "*" if pid is None else f"{pid:04x}"
        lines.append(f'ATTR{{idVendor}}=="{vid:04x}", ATTR{{idProduct}}=="{product}", '
                     f'MODE="664", GROUP="{group}"\n')
    lines.append(UDEV_FOOTER)
    return "".join(lines)


def udev_rules_path() -> Path:
    """The copy shipped as package data (nutbridge/data/udev/)."""
    return Path(__file__).resolve().parents[2] / "data" / "udev" / "62-nut-bridge-usbups.rules"


def main(argv: list[str]) -> int:
    """``nutbridge udev-rules [--group NAME]``: print the udev rules file."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="nutbridge udev-rules",
                                 description="Print udev rules giving a group access to USB HID UPSes.")
    ap.add_argument("--group", default="nut", help="group owning the device nodes (default: nut)")
    args = ap.parse_args(argv)
    sys.stdout.write(udev_rules(args.group))
    return 0


if __name__ == "__main__":  # python -m nutbridge.drivers.usbhid.driver [--group NAME]
    import sys

    sys.exit(main(sys.argv[1:]))
