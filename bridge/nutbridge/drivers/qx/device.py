"""The shape of nutdrv_qx's device protocols, sans-IO: what :mod:`.driver` needs of one.

Besides Megatec Q1 (:mod:`.q1`) and Voltronic (:mod:`.voltronic`), NUT's nutdrv_qx knows a
few device-specific protocols (``protocol = zinto | hunnox | ablerex | gtec | masterguard``).
Each is a Megatec relative: short ASCII requests ending in CR, one CR-terminated reply, the
same shutdown and battery-test commands in most of them, but other queries, columns and
status encodings. Each lives in its own module as a subclass of :class:`DeviceProtocol`:

* the queries: the status query asked on every poll, the static ones asked once on
  connect (a rating and an identity query that ``norating``/``novendor`` skip), the
  optional ones polled when the UPS answered them on connect;
* :meth:`DeviceProtocol.parse`: one reply -> raw NUT variables (None when malformed);
* :meth:`DeviceProtocol.read`: everything last read -> what to publish (:class:`Reading`);
* :meth:`DeviceProtocol.encode_command` / :meth:`DeviceProtocol.encode_setvar`: the bytes.

An instance lives for one connection: some protocols remember what a reply told them
(Masterguard's slave address, Ablerex's battery voltage from ``Q5``). Parsers never raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..base import finite_number
from . import q1
from .common import COMMANDS, Field, StatusInfo, frame


@dataclass
class Reading:
    """What one poll publishes: variables, ``ups.status`` tokens and ``ups.alarm`` texts."""

    values: dict[str, str]
    tokens: list[str]
    alarms: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Writable:
    """A variable the UPS lets the host set: a number range or a list of values."""

    low: int | None = None
    high: int | None = None
    enums: tuple[str, ...] = ()


class DeviceProtocol:
    """One of nutdrv_qx's device protocols; subclasses fill in the class attributes."""

    name: ClassVar[str]  #: ups.conf ``protocol`` value, as NUT spells it
    label: ClassVar[str]  #: driver.version.data
    status_query: ClassVar[str]
    rating_query: ClassVar[str | None] = None  #: skipped with ``norating``
    vendor_query: ClassVar[str | None] = None  #: skipped with ``novendor``
    other_static: ClassVar[tuple[str, ...]] = ()  #: asked once more on connect
    optional: ClassVar[tuple[str, ...]] = ()  #: polled when answered on connect
    commands: ClassVar[tuple[str, ...]] = COMMANDS
    delay_ranges: ClassVar[Mapping[str, tuple[int, int]]] = q1.DELAY_RANGES
    #: (offdelay, ondelay) where the protocol's NUT table has its own defaults
    default_delays: ClassVar[tuple[int, int] | None] = None
    #: constants NUT's table publishes for every unit of this protocol
    constants: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *, ignoresab: bool = False) -> None:
        self.ignoresab = ignoresab

    def request(self, query: str) -> bytes:
        """The bytes that ask ``query``."""
        return frame(query)

    def claim(self, novendor: bool) -> tuple[str, ...]:
        """The queries that must all be answered for this protocol to claim a unit it was
        not told to use, in the order NUT asks them."""
        if novendor or self.vendor_query is None:
            return (self.status_query,)
        return (self.status_query, self.vendor_query)

    def static(self, *, norating: bool, novendor: bool) -> tuple[str, ...]:
        """The queries asked once on connect."""
        out = [] if norating or self.rating_query is None else [self.rating_query]
        if not novendor and self.vendor_query is not None:
            out.append(self.vendor_query)
        return (*out, *self.other_static)

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        raise NotImplementedError

    def read(self, static: Mapping[str, str], polled: Mapping[str, str]) -> Reading:
        raise NotImplementedError

    def encode_command(self, cmd: str, param: str | None, ondelay: int, offdelay: int
                       ) -> bytes | None:
        raise NotImplementedError

    def writable(self, static: Mapping[str, str]) -> dict[str, Writable]:
        """The UPS settings besides the two delays, once the static replies are in."""
        return {}

    def encode_setvar(self, name: str, value: str) -> bytes | None:
        """The bytes that set ``name``; None if it is not a UPS setting. Raises
        :class:`~.common.CommandError` on a bad value."""
        return None


# ---- helpers shared by the Megatec-like protocols -------------------------------------------

def battery_guess(values: dict[str, str], nominal_text: str | None) -> None:
    """Add NUT's battery.voltage.low/.high and battery.charge guesses (empty at 104/120 and
    full at 130/120 of the nominal voltage) when the UPS gives no charge. A nominal of 0
    (some units' F reply) gives 0.00 limits and no charge, as NUT shows them."""
    nominal = finite_number(nominal_text or "")
    volts = finite_number(values.get("battery.voltage", ""))
    if nominal is None or volts is None or nominal < 0:
        return
    low, high, charge = q1.battery_charge(volts, nominal)
    values["battery.voltage.low"] = f"{low:.2f}"
    values["battery.voltage.high"] = f"{high:.2f}"
    if nominal > 0 and "battery.charge" not in values:
        values["battery.charge"] = str(charge)



class Q1Like(DeviceProtocol):
    """A protocol built on Megatec's ``Q1`` status line and ``F`` ratings (the columns and
    status bits of :mod:`.q1`), with its own identity query and extras."""

    status_query = "Q1"
    rating_query = "F"
    #: the variable table (query names as in :mod:`.q1`: "status", "F", "I")
    items: ClassVar[tuple[Field, ...]] = q1.ITEMS

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        if query == self.status_query:
            return q1.parse("status", raw, self.items)
        if query == self.rating_query:
            return q1.parse("F", raw, self.items)
        if query == self.vendor_query:  # the I layout, whatever the query is called
            return q1.parse("I", raw, self.items)
        return None

    def status(self, values: Mapping[str, str]) -> StatusInfo:
        return q1.decode_status(values["_bits"], finite_number(values.get("input.voltage", "")),
                                finite_number(values.get("output.voltage", "")),
                                ignoresab=self.ignoresab)

    def read(self, static: Mapping[str, str], polled: Mapping[str, str]) -> Reading:
        values = {k: v for k, v in {**static, **polled}.items() if not k.startswith("_")}
        st = self.status(polled)
        values["ups.type"] = st.ups_type
        values["ups.beeper.status"] = st.beeper
        battery_guess(values, static.get("battery.voltage.nominal"))
        return Reading(values, st.tokens, st.alarms)

    def encode_command(self, cmd: str, param: str | None, ondelay: int, offdelay: int
                       ) -> bytes | None:
        return q1.encode_command(cmd, param, ondelay, offdelay)
