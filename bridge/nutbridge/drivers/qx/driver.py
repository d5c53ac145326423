"""Megatec/Q1 UPSes: ``driver = nutdrv_qx``, ``blazer_ser`` and ``blazer_usb``.

The I/O and publishing half of the qx family: :class:`MegatecDriver` asks its queries
on a link (one request, one CR-terminated reply, a few tries), finds the protocol as NUT
does (Voltronic, Mustek, Megatec, then the device protocols zinto, masterguard, gtec) and
publishes what the sans-IO modules read from the replies: :mod:`.q1` (Megatec Q1 and
Mustek QS), :mod:`.voltronic` (QGS/QPI, nutdrv_qx only), :mod:`.common` (what both
share), and nutdrv_qx's device protocols (:mod:`.device`: :mod:`.zinto` with hunnox,
:mod:`.ablerex`, :mod:`.gtec`, :mod:`.masterguard`).

The link is a :class:`~nutbridge.drivers.serial.SerialLink` for a serial port, or a
:class:`~.usblink.UsbLink` for a UPS behind a USB bridge chip (:mod:`.usb` holds how each
of nutdrv_qx's USB subdrivers frames the bytes). As in NUT, ``blazer_usb`` is always USB,
``blazer_ser`` always serial, and ``nutdrv_qx`` is USB when ``port = auto`` or any USB
option is given.

ups.conf options: ``port`` (required; ``auto`` for USB), ``pollinterval``, ``ondelay``
(s, default 180), ``offdelay`` (s, default 30; hunnox: 60 and 0), ``protocol``
(voltronic, mustek, megatec, zinto, hunnox, ablerex, gtec or masterguard; default: detect,
as NUT; blazer_*: mustek or megatec), ``novendor``,
``norating``, ``ignoresab``. Serial: ``cablepower`` (normal/reverse/both/none: the
DTR/RTS levels some cables take their power from), ``baudrate``. USB: ``subdriver``
(default: chosen by vendor/product ID as NUT does; needs ``vendorid`` and ``productid``),
``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``, ``bus``, ``device``
(NUT's matching regular expressions), ``langid_fix`` (the language string descriptors are
read in: krauler, hunnox, snr), ``noscanlangid``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from ...compat import driver_core_2_8_5
from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status, finite_number, option_number
from ..serial import SerialLink, SerialTimeout
from ..usbhid.transport import MATCH_KEYS, Matcher
from . import q1, usb, voltronic
from .ablerex import Ablerex
from .common import COMMANDS, CommandError, command_status, is_nak, round_offdelay, round_ondelay
from .device import DeviceProtocol
from .gtec import Gtec
from .masterguard import Masterguard
from .usblink import UsbLink
from .zinto import Hunnox, Zinto

log = logging.getLogger(__name__)

#: pyusb backend the USB links of this process use (None: libusb-1.0). Tests install
#: a fake one (simulation/fakeqx.py).
backend: object | None = None
#: options that make nutdrv_qx a USB driver, as in NUT (besides ``port = auto``)
USB_OPTIONS = ("subdriver", *MATCH_KEYS, "langid_fix")

#: a reply is one line; anything longer is noise
MAX_REPLY = 128
REPLY_TIMEOUT = 1.0  # s, as NUT's SER_WAIT_SEC
TRIES = 3  # per query, as NUT's MAXTRIES
DEFAULT_ONDELAY = 180
DEFAULT_OFFDELAY = 30

#: ups.conf ``protocol`` -> driver.version.data; the order is the detection order
PROTOCOL_NAMES = {"voltronic": "Voltronic", "mustek": "Mustek", "megatec": "Megatec"}
#: nutdrv_qx's device protocols (ups.conf ``protocol``; not blazer_*): see :mod:`.device`
DEVICE_PROTOCOLS: dict[str, type[DeviceProtocol]] = {
    cls.name: cls for cls in (Zinto, Masterguard, Hunnox, Ablerex, Gtec)}
_CABLEPOWER = {"normal": (True, False), "reverse": (False, True), "both": (True, True),
               "none": (False, False)}


def _whole_option(config: Mapping[str, str], name: str, default: int, *,
                  above: bool = False) -> int:
    """A whole-number ups.conf option (>= 0, or > 0 with ``above``): a fraction is an error."""
    value = option_number(config, name, default, above=above, what="a whole number")
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, not {config[name]!r}")
    return int(value)


def _langid(text: str | None) -> int | None:
    """ups.conf ``langid_fix`` (``0x0409``; hexadecimal) as a number."""
    if not text:
        return None
    digits = text[2:] if text[:2].lower() == "0x" else text
    try:
        value = int(digits, 16)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFFFF:
        raise ConfigError(f"langid_fix must be a USB language ID such as 0x0409, not {text!r}")
    return value


class MegatecDriver(Driver):
    names = ("nutdrv_qx", "blazer_ser", "blazer_usb")
    options = frozenset({
        "port", "pollinterval", "pollfreq", "ondelay", "offdelay", "cablepower", "protocol",
        "novendor", "norating", "ignoresab", "baudrate", *USB_OPTIONS, "noscanlangid",
    })
    version = "0.1"

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        c = self.config
        name = c.get("driver", "")
        self.port = c.get("port", "") or ("auto" if name == "blazer_usb" else "")
        if not self.port:
            raise ConfigError("megatec: 'port' is required")
        self.blazer = name in ("blazer_ser", "blazer_usb")
        self.usb = name == "blazer_usb" or (name != "blazer_ser" and (
            self.port.lower() == "auto" or any(c.get(k) for k in USB_OPTIONS)))
        if self.usb and self.port.lower() != "auto":
            log.warning("UPS [%s]: port = %s is ignored: the USB options make this a USB UPS",
                        device.name, self.port)
        cable = c.get("cablepower", "normal").lower()
        if cable not in _CABLEPOWER:
            raise ConfigError(f"cablepower must be one of {', '.join(_CABLEPOWER)}")
        self.protocol: str | None = c.get("protocol") or None
        known = list(q1.STATUS_QUERY) if self.blazer else [*PROTOCOL_NAMES, *DEVICE_PROTOCOLS]
        if self.protocol is not None and self.protocol not in known:
            raise ConfigError(f"protocol must be one of {', '.join(known)}")
        device_cls = DEVICE_PROTOCOLS.get(self.protocol or "")
        off_default, on_default = (device_cls.default_delays if device_cls is not None
                                   and device_cls.default_delays is not None
                                   else (DEFAULT_OFFDELAY, DEFAULT_ONDELAY))
        self.ondelay = round_ondelay(_whole_option(c, "ondelay", on_default))
        self.offdelay = round_offdelay(_whole_option(c, "offdelay", off_default))
        baud = _whole_option(c, "baudrate", 2400, above=True)
        # Voltronic units count up to 99 minutes, the others up to 10; while the protocol is
        # unknown, allow the larger (connect() clamps it for a Q1 unit)
        ranges = (q1.DELAY_RANGES if self.protocol in q1.STATUS_QUERY
                  else device_cls.delay_ranges if device_cls is not None
                  else voltronic.DELAY_RANGES)
        lo, max_off = ranges["ups.delay.shutdown"]
        lo_on, hi_on = ranges["ups.delay.start"]
        if not lo <= self.offdelay <= max_off or not lo_on <= self.ondelay <= hi_on:
            raise ConfigError(f"offdelay must be {lo}..{max_off} s and ondelay {lo_on}..{hi_on} s")
        self.flags = {k for k in ("novendor", "norating", "ignoresab") if k in c}
        dtr, rts = _CABLEPOWER[cable]
        self.link: SerialLink | UsbLink
        if self.usb:
            self.link = self._usb_link(name)
            # a replugged UPS re-enumerates within a few seconds: look for it often
            self.retry_max = 2.0
        else:
            self.link = SerialLink(self.port, baudrate=baud, dtr=dtr, rts=rts)
            # reopening a serial port is cheap: keep the worst-case recovery after a replug
            # well under 10 s
            self.retry_max = 5.0
        self._lock = asyncio.Lock()
        # the profile's release (compat.py): 2.8.5's tables differ (q1.items_for, voltronic)
        self.nut_285 = driver_core_2_8_5()
        self._static: dict[str, str] = {}
        self._polled: tuple[str, ...] = ()  # the optional queries the UPS answers
        self._published = False
        #: the device protocol in use (a new one per connection: some remember replies)
        self.dev_proto: DeviceProtocol | None = None
        self._probed: dict[str, dict[str, str]] = {}  # replies detection already read
        self._optional: dict[str, str] = {}  # the optional queries' latest values

    def _usb_link(self, name: str) -> UsbLink:
        c = self.config
        blazer_usb = name == "blazer_usb"
        allowed = {k: usb.SUBDRIVERS[k] for k in usb.BLAZER_SUBDRIVERS} if blazer_usb \
            else dict(usb.SUBDRIVERS)
        forced = c.get("subdriver", "").lower() or None
        if forced is not None:
            if forced in usb.UNSUPPORTED and not blazer_usb:
                raise ConfigError(f"subdriver {forced} ({usb.UNSUPPORTED[forced]}) is not "
                                  f"implemented natively; nutbridge_hosted runs NUT's driver")
            if forced not in allowed:
                raise ConfigError(f"unknown subdriver '{forced}' (one of {', '.join(allowed)})")
            if not c.get("vendorid") or not c.get("productid"):
                raise ConfigError("when specifying a USB 'subdriver', 'vendorid' and "
                                  "'productid' are mandatory (as in NUT)")
        setup = usb.Setup(langid_fix=_langid(c.get("langid_fix")), novendor="novendor" in c)
        return UsbLink(Matcher.from_config(c), ids=usb.BLAZER_USB_IDS if blazer_usb
                       else usb.NUTDRV_QX_IDS, subdrivers=allowed, forced=forced, setup=setup,
                       noscanlangid="noscanlangid" in c, label=f"UPS [{self.device.name}]")

    @property
    def counters(self) -> dict[str, int]:
        return self.link.counters

    @property
    def where(self) -> str:
        """The port, or the USB device, for messages."""
        return self.link.describe() if isinstance(self.link, UsbLink) else self.port

    def _delay_ranges(self) -> dict[str, tuple[int, int]]:
        device_cls = DEVICE_PROTOCOLS.get(self.protocol or "")
        if device_cls is not None:
            return dict(device_cls.delay_ranges)
        return voltronic.DELAY_RANGES if self.protocol == "voltronic" else q1.DELAY_RANGES

    # ---- transport -------------------------------------------------------------------
    async def _transact(self, request: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        """Send one request and read one line; None if the UPS stays silent. Raises
        DeviceError when the port itself fails."""
        async with self._lock:
            link = self.link
            if isinstance(link, UsbLink):
                return await link.transact(request)
            await link.flush_input()
            await link.write(request)
            try:
                return await link.read_until(b"\r", timeout, MAX_REPLY)
            except SerialTimeout:
                return None

    async def query(self, query: str, request: bytes | None = None, tries: int = TRIES
                    ) -> dict[str, str] | None:
        """Ask up to ``tries`` times for a well-formed reply; malformed ones are counted.
        ``query`` names the reply's layout (a Voltronic query, or Q1's "status", "F", "I");
        ``request`` defaults to how the protocol in use asks it."""
        voltronic_query = query in voltronic.MIN_LEN
        if voltronic_query:
            table = voltronic.ITEMS_285 if self.nut_285 else voltronic.ITEMS
        else:
            table = q1.items_for(self.protocol or "megatec", self.blazer, self.nut_285)
        parse = voltronic.parse if voltronic_query else q1.parse
        if request is None:
            request = voltronic.request(query) if voltronic_query \
                else q1.request(query, self.protocol or "megatec")
        return await self._ask(request, lambda raw: parse(query, raw, table), tries)

    async def device_query(self, proto: DeviceProtocol, query: str, tries: int = TRIES
                           ) -> dict[str, str] | None:
        """:meth:`query` for a device protocol's query."""
        return await self._ask(proto.request(query), lambda raw: proto.parse(query, raw), tries)

    async def _ask(self, request: bytes, parse: Callable[[bytes], dict[str, str] | None],
                   tries: int) -> dict[str, str] | None:
        for _ in range(tries):
            try:
                raw = await self._transact(request)
            except DeviceError:
                if not self.link.is_open:
                    raise
                continue  # an oversize line: already counted by the link
            if raw is None:
                continue
            if is_nak(raw):
                return None  # the UPS does not know this query: asking again will not help
            values = parse(raw)
            if values is not None:
                return values
            self.link.counters["garbage"] += 1
            log.debug("UPS [%s]: dropped malformed reply to %r: %r", self.device.name, request, raw)
        return None

    # ---- life cycle ------------------------------------------------------------------
    async def connect(self) -> None:
        if isinstance(self.link, UsbLink):
            self.link.backend = backend
            await self.link.open()
        else:
            await self.link.open()
            await asyncio.sleep(0.1)  # let a cable powered from DTR/RTS come up
        self._probed = {}
        if self.protocol is None:
            self.protocol = await self._detect()
        if self.protocol == "voltronic":
            await self._connect_voltronic()
            return
        if self.protocol in DEVICE_PROTOCOLS:
            await self._connect_device()
            return
        # detected a unit that counts only up to 10 minutes
        self.offdelay = min(self.offdelay, q1.DELAY_RANGES["ups.delay.shutdown"][1])
        static: dict[str, str] = {}
        if "norating" not in self.flags:
            static.update(await self.query("F") or {})
        if "novendor" not in self.flags:
            ident = self._probed.get("I")
            static.update(ident if ident is not None else await self.query("I", tries=2) or {})
        self._static = static

    async def _connect_device(self) -> None:
        proto = DEVICE_PROTOCOLS[self.protocol or ""](ignoresab="ignoresab" in self.flags)
        self.dev_proto = proto
        self._optional = {}
        hi = proto.delay_ranges["ups.delay.shutdown"][1]
        self.offdelay = min(self.offdelay, hi)
        static: dict[str, str] = {}
        for query in proto.static(norating="norating" in self.flags,
                                  novendor="novendor" in self.flags):
            static.update(await self.device_query(proto, query, tries=2) or {})
        self._static = static
        self._polled = tuple([q for q in proto.optional
                              if await self.device_query(proto, q, tries=2) is not None])

    async def _connect_voltronic(self) -> None:
        static: dict[str, str] = {}
        for query in voltronic.STATIC:
            static.update(await self.query(query, tries=2) or {})
        self._static = static
        self._polled = tuple([q for q in voltronic.POLLED if await self.query(q, tries=2) is not None])

    async def _detect(self) -> str:
        # NUT's order: Voltronic (QGS, confirmed by QPI), then Mustek (units that answer
        # QS may answer Q1 with something else), then Megatec (Q1 and I), then the device
        # protocols a Q1 unit without I may speak (zinto: FW?; masterguard: WH and MSO),
        # then Q1 alone (NUT's "q1"; published as Megatec); a unit that does not answer Q1
        # may still be a Masterguard or a Gtec (Q4 and I). One try per probe.
        name = await self._probe()
        if name is None:
            raise DeviceError(f"no Megatec/Q1 UPS answers on {self.where}")
        log.info("UPS [%s]: using protocol %s", self.device.name,
                 PROTOCOL_NAMES.get(name) or DEVICE_PROTOCOLS[name].label)
        return name

    async def _probe(self) -> str | None:
        if not self.blazer and await self.query("QGS", tries=1) is not None \
                and await self.query("QPI", tries=1) is not None:
            return "voltronic"
        if await self.query("status", q1.request("status", "mustek"), tries=1) is not None:
            return "mustek"
        q1_unit = await self.query("status", q1.request("status", "megatec"), tries=1) is not None
        if self.blazer:
            return "megatec" if q1_unit else None
        if q1_unit:
            if "novendor" in self.flags:
                return "megatec"
            ident = await self.query("I", tries=1)
            if ident is not None:
                self._probed["I"] = ident
                return "megatec"
        for name in ("zinto", "masterguard") if q1_unit else ("masterguard", "gtec"):
            if await self._claims(DEVICE_PROTOCOLS[name]):
                return name
        return "megatec" if q1_unit else None

    async def _claims(self, cls: type[DeviceProtocol]) -> bool:
        """Whether a unit answers the queries that make ``cls`` claim it (one try each)."""
        proto = cls()
        for query in proto.claim("novendor" in self.flags):
            if await self.device_query(proto, query, tries=1) is None:
                return False
        return True

    async def close(self) -> None:
        await self.link.close()

    async def update(self) -> None:
        assert self.protocol is not None
        proto = self.dev_proto
        if proto is not None and self.protocol == proto.name:
            polled = await self.device_query(proto, proto.status_query)
            if polled is None:
                raise DeviceError(f"no valid status reply from {self.where}")
            for query in self._polled:  # a missed optional reply keeps the last values
                self._optional.update(await self.device_query(proto, query, tries=1) or {})
            self._publish_device(proto, self._optional | polled)
            return
        voltronic_unit = self.protocol == "voltronic"
        values = await self.query("QGS" if voltronic_unit else "status")
        if values is None:
            raise DeviceError(f"no valid status reply from {self.where}")
        if voltronic_unit:
            for query in self._polled:  # a missed optional reply keeps the last values
                values.update(await self.query(query, tries=1) or {})
            self._publish_voltronic(values)
        else:
            self._publish_q1(values)

    # ---- publishing ------------------------------------------------------------------
    def _publish_constants(self) -> None:
        """What is published once per connection: driver info, commands, the delays."""
        dev = self.device
        self.publish_driver_info()
        self.publish_core_extras()
        proto = self.dev_proto
        if proto is not None:
            dev.set("driver.version.data", proto.label)
        elif not self.blazer:
            dev.set("driver.version.data", PROTOCOL_NAMES[self.protocol or "megatec"])
        dev.set("device.type", "ups")
        info = self.link.info if isinstance(self.link, UsbLink) else None
        if info is not None:
            dev.set("ups.vendorid", f"{info.vendor_id:04x}")
            dev.set("ups.productid", f"{info.product_id:04x}")
        for cmd in COMMANDS if proto is None else proto.commands:
            dev.add_cmd(cmd)
        ranges = self._delay_ranges()
        for var, delay in (("ups.delay.shutdown", self.offdelay), ("ups.delay.start", self.ondelay)):
            # blazer_ser takes them from ups.conf only
            dev.set(var, delay, rw=not self.blazer)
            if not self.blazer:
                dev.add_range(var, *ranges[var])
        self._published = True

    def _publish_q1(self, values: dict[str, str]) -> None:
        dev = self.device
        bits = values.pop("_bits")
        st = q1.decode_status(bits, finite_number(values.get("input.voltage", "")),
                              finite_number(values.get("output.voltage", "")),
                              ignoresab="ignoresab" in self.flags)
        with dev.batch():
            if not self._published:
                self._publish_constants()
                dev.set("ups.type", st.ups_type)
            for var, value in self._static.items():
                dev.set(var, value)
                if var == "ups.serial":  # the driver core mirrors it
                    dev.set("device.serial", value)
                if self.blazer and var in ("device.mfr", "device.model"):
                    dev.set("ups." + var.split(".")[1], value)
            for var, value in values.items():
                dev.set(var, value)
            nominal = finite_number(self._static.get("battery.voltage.nominal", ""))
            volts = finite_number(values.get("battery.voltage", ""))
            if nominal and volts is not None:
                low, high, charge = q1.battery_charge(volts, nominal)
                dev.set("battery.voltage.low", f"{low:.2f}")
                dev.set("battery.voltage.high", f"{high:.2f}")
                dev.set("battery.charge", charge)
            dev.set("ups.beeper.status", st.beeper)
            self.publish_status(st.tokens, st.alarms)

    def _publish_voltronic(self, values: dict[str, str]) -> None:
        dev = self.device
        bits = values.pop("_bits")
        st = voltronic.decode_status(bits, values.pop("_mode", None),
                                     ignoresab="ignoresab" in self.flags)
        with dev.batch():
            if not self._published:
                self._publish_constants()
            if st.ups_type:
                dev.set("ups.type", st.ups_type)
            for var, value in (self._static | values).items():
                if var == "battery.packs":
                    dev.set(var, value, rw=True)
                    dev.add_range(var, *voltronic.PACKS_RANGE)
                else:
                    dev.set(var, value)
            if self.nut_285:
                nominal = finite_number(self._static.get("battery.voltage.nominal", ""))
                if nominal:
                    low, high, _ = q1.battery_charge(nominal, nominal)
                    dev.set("battery.voltage.low", f"{low:.2f}")
                    dev.set("battery.voltage.high", f"{high:.2f}")
            dev.set("ups.beeper.status", st.beeper)
            self.publish_status(st.tokens, st.alarms)

    def _publish_device(self, proto: DeviceProtocol, polled: dict[str, str]) -> None:
        reading = proto.read(self._static, polled)
        writable = proto.writable(self._static)
        dev = self.device
        with dev.batch():
            if not self._published:
                self._publish_constants()
            for var, value in reading.values.items():
                setting = writable.get(var)
                if setting is None:
                    dev.set(var, value)
                    continue
                dev.set(var, value, rw=True)
                if setting.low is not None and setting.high is not None:
                    dev.add_range(var, setting.low, setting.high)
                for choice in setting.enums:
                    dev.add_enum(var, choice)
            self.publish_status(reading.tokens, reading.alarms)

    # ---- commands and settings ---------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        try:
            if self.dev_proto is not None:
                if cmd.lower() not in self.dev_proto.commands:
                    return Status.UNKNOWN
                request = self.dev_proto.encode_command(cmd, param, self.ondelay, self.offdelay)
            elif self.protocol == "voltronic":
                request = voltronic.encode_command(
                    cmd, param, self.ondelay, self.offdelay,
                    beeper_on=self.device.value("ups.beeper.status") != "disabled")
            else:
                request = q1.encode_command(cmd, param, self.ondelay, self.offdelay,
                                            minutes=self.blazer)
        except CommandError as exc:
            log.warning("UPS [%s]: %s", self.device.name, exc)
            return Status.INVALID
        if request is None:
            return Status.UNKNOWN
        return await self._command(cmd, request)

    async def _command(self, cmd: str, request: bytes) -> Status:
        if not self.link.is_open:
            return Status.FAILED
        try:
            reply = await self._transact(request)
        except DeviceError as exc:
            log.warning("UPS [%s]: %s: %s", self.device.name, cmd, exc)
            return Status.FAILED
        status = command_status(reply)
        if status != Status.HANDLED:
            log.warning("UPS [%s]: %s refused (%r)", self.device.name, cmd, reply)
        self.poke()
        return status

    async def setvar(self, name: str, value: str) -> Status:
        name = name.lower()
        proto = self.dev_proto
        if proto is not None and name in proto.writable(self._static):
            try:
                request = proto.encode_setvar(name, value)
            except CommandError:
                return Status.INVALID
            if request is None:
                return Status.UNKNOWN
            return await self._command(name, request)
        if self.protocol == "voltronic" and name == "battery.packs" \
                and self.device.value(name) is not None:
            try:
                request = voltronic.set_packs(value)
            except CommandError:
                return Status.INVALID
            return await self._command(name, request)
        if name not in q1.DELAY_RANGES or self.blazer:
            return Status.UNKNOWN
        try:
            seconds = int(value)
        except ValueError:
            return Status.INVALID
        lo, hi = self._delay_ranges()[name]
        if not lo <= seconds <= hi:
            return Status.INVALID
        if name == "ups.delay.shutdown":
            self.offdelay = round_offdelay(seconds)
            self.device.set(name, self.offdelay)
        else:
            self.ondelay = round_ondelay(seconds)
            self.device.set(name, self.ondelay)
        return Status.HANDLED
