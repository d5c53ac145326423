"""Power events: status transitions of each UPS, fired on the bus as ``nut_bridge_event``.

Every coordinator update (a pushed batch, a poll, or a failed poll) is compared
with what was known before, per UPS. Detection is a pure function of two
:class:`UpsSnapshot`; the listener only keeps the snapshots and fires the events.
The data present when the entry is set up is the baseline: restarting Home
Assistant during an outage does not report "power lost" a second time.

What the device triggers (device_trigger.py), the event entities (event.py) and
the blueprints see is the bus event, whose data is :class:`NutBridgeEventData`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final, TypedDict

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.util.event_type import EventType

from .const import KEY_STATUS
from .coordinator import NutBridgeConfigEntry, UpsState
from .entity import ups_identifier

KEY_BATTERY_CHARGE: Final = "battery.charge"
KEY_BATTERY_RUNTIME: Final = "battery.runtime"


class PowerEvent(StrEnum):
    """The event types (also the device trigger types and the event entity's types)."""

    POWER_LOST = "power_lost"
    POWER_RESTORED = "power_restored"
    BATTERY_LOW = "battery_low"
    REPLACE_BATTERY = "replace_battery"
    FORCED_SHUTDOWN = "forced_shutdown"
    COMMUNICATION_LOST = "communication_lost"
    COMMUNICATION_RESTORED = "communication_restored"


EVENT_TYPES: Final[list[str]] = [event.value for event in PowerEvent]


class NutBridgeEventData(TypedDict):
    """Data of a ``nut_bridge_event``; NUT values are the raw strings, None when absent."""

    device_id: str | None
    config_entry_id: str
    ups: str
    type: str
    status: str | None
    battery_charge: str | None
    battery_runtime: str | None


EVENT_NUT_BRIDGE: Final = EventType[NutBridgeEventData]("nut_bridge_event")


@dataclass(frozen=True)
class UpsSnapshot:
    """What event detection remembers of one UPS after an update."""

    available: bool
    # Status flags last seen while the UPS was available (kept while it is not);
    # None until it has been available once.
    tokens: frozenset[str] | None = None
    # Power source as upsmon reads it: True with OB, False with OL; a status with
    # neither (OFF, WAIT, ...) keeps the previous answer. None: never seen.
    on_battery: bool | None = None
    # The variables behind ``tokens``, for the event data only.
    variables: Mapping[str, str] = field(default_factory=dict, compare=False)


def observe(previous: UpsSnapshot | None, state: UpsState | None, *, connected: bool = True) -> UpsSnapshot:
    """The snapshot of a UPS after an update.

    ``state`` is None when the server no longer lists the UPS; ``connected`` is
    False when the whole update failed (the coordinator keeps its old data then).
    """
    if not connected or state is None or not state.available:
        return UpsSnapshot(available=False) if previous is None else replace(previous, available=False)
    tokens = state.status_tokens
    if "OB" in tokens:
        on_battery: bool | None = True
    elif "OL" in tokens:
        on_battery = False
    else:
        on_battery = previous.on_battery if previous else None
    return UpsSnapshot(True, tokens, on_battery, dict(state.variables))


type _Test = Callable[[UpsSnapshot, UpsSnapshot], bool]


def _flag_appears(flag: str) -> _Test:
    def test(before: UpsSnapshot, after: UpsSnapshot) -> bool:
        return flag in (after.tokens or ()) and flag not in (before.tokens or ())

    return test


def _goes_on_battery(before: UpsSnapshot, after: UpsSnapshot) -> bool:
    return after.on_battery is True and before.on_battery is not True


def _back_on_line(before: UpsSnapshot, after: UpsSnapshot) -> bool:
    return after.on_battery is False and before.on_battery is True


# Each event with its test on the (before, after) snapshots, in the order they fire.
_AVAILABILITY_EVENTS: Final[tuple[tuple[PowerEvent, _Test], ...]] = (
    (PowerEvent.COMMUNICATION_LOST, lambda before, after: before.available and not after.available),
    (PowerEvent.COMMUNICATION_RESTORED, lambda before, after: not before.available and after.available),
)
# Only checked when the UPS is available now and its status was seen before, so
# that the first status of a UPS (or the first after setup) is a baseline.
_STATUS_EVENTS: Final[tuple[tuple[PowerEvent, _Test], ...]] = (
    (PowerEvent.POWER_LOST, _goes_on_battery),
    (PowerEvent.POWER_RESTORED, _back_on_line),
    (PowerEvent.BATTERY_LOW, _flag_appears("LB")),
    (PowerEvent.REPLACE_BATTERY, _flag_appears("RB")),
    (PowerEvent.FORCED_SHUTDOWN, _flag_appears("FSD")),
)


def detect_events(before: UpsSnapshot | None, after: UpsSnapshot) -> list[PowerEvent]:
    """The events between two snapshots of one UPS; none for the first one (baseline).

    Status changes are measured against the status last seen while the UPS was
    available: on battery before a communication loss and on line power after it
    gives "communication restored" and then "power restored".
    """
    if before is None:
        return []
    events = [event for event, test in _AVAILABILITY_EVENTS if test(before, after)]
    if after.available and before.tokens is not None:
        events.extend(event for event, test in _STATUS_EVENTS if test(before, after))
    return events


class PowerEventSource:
    """Coordinator listener: keeps a snapshot per UPS and fires the events."""

    def __init__(self, hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = entry.runtime_data.coordinator
        # Setup runs after the first successful refresh: its data is the baseline.
        self.snapshots: dict[str, UpsSnapshot] = {
            name: observe(None, state) for name, state in (self.coordinator.data or {}).items()
        }

    @callback
    def async_update(self) -> None:
        """Compare the coordinator's data (or its failure) with the snapshots."""
        data = self.coordinator.data or {}
        connected = self.coordinator.last_update_success
        for name in sorted(self.snapshots.keys() | data.keys()):
            before = self.snapshots.get(name)
            after = self.snapshots[name] = observe(before, data.get(name), connected=connected)
            for event in detect_events(before, after):
                self._async_fire(name, event, after)

    @callback
    def _async_fire(self, ups: str, event: PowerEvent, snapshot: UpsSnapshot) -> None:
        device = dr.async_get(self.hass).async_get_device_by_identifier(
            ups_identifier(self.entry, ups), self.entry.entry_id
        )
        variables = snapshot.variables
        self.hass.bus.async_fire(
            EVENT_NUT_BRIDGE,
            NutBridgeEventData(
                device_id=device.id if device else None,
                config_entry_id=self.entry.entry_id,
                ups=ups,
                type=event.value,
                status=variables.get(KEY_STATUS),
                battery_charge=variables.get(KEY_BATTERY_CHARGE),
                battery_runtime=variables.get(KEY_BATTERY_RUNTIME),
            ),
        )


@callback
def async_setup_events(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """Start turning status transitions into events for this entry."""
    source = PowerEventSource(hass, entry)
    entry.async_on_unload(source.coordinator.async_add_listener(source.async_update))
