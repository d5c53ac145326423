"""Power events (power_events.py): detection rules, and end to end against a real bridge.

Bus events (``nut_bridge_event``), device triggers and the event entity are driven by
the simulated UPS (mains loss by INSTCMD), the dummy-ups data file (LB, RB, FSD),
a stale UPS, and the bridge process itself stopping and starting again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry, UpsState
from custom_components.nut_bridge.power_events import (
    EVENT_NUT_BRIDGE,
    EVENT_TYPES,
    NutBridgeEventData,
    PowerEvent,
    UpsSnapshot,
    detect_events,
    observe,
)
from tests.support.realnut import BridgeProcess

from .conftest import (
    DUMMY_DEV,
    Bridge,
    instcmd,
    setup_automations,
    setup_entry,
    state_of,
    ups_device,
    wait_for,
)

# ---------------------------------------------------------------- detection rules

# A step of a sequence: a ups.status string, "stale" (the UPS answers DATA-STALE, its
# last values kept as the coordinator does), "gone" (not listed any more) or "down"
# (the whole update failed).
Step = str


def _run(steps: Sequence[Step]) -> list[list[str]]:
    """Feed a sequence through observe/detect_events; the events after each step."""
    snapshot: UpsSnapshot | None = None
    last: dict[str, str] = {}
    out: list[list[str]] = []
    for step in steps:
        state: UpsState | None
        connected = step != "down"
        if step == "gone":
            state = None
        elif step in ("stale", "down"):
            state = UpsState("ups", "", dict(last), error="DATA-STALE" if step == "stale" else None)
        else:
            last = {"ups.status": step, "battery.charge": "50"}
            state = UpsState("ups", "", dict(last))
        after = observe(snapshot, state, connected=connected)
        out.append([str(e) for e in detect_events(snapshot, after)])
        snapshot = after
    return out


def test_event_types_are_the_enum() -> None:
    assert [e.value for e in PowerEvent] == EVENT_TYPES
    assert len(set(EVENT_TYPES)) == 7


def test_first_update_is_a_baseline() -> None:
    # HA restarted during an outage with a low battery: nothing is reported again ...
    assert _run(["OB DISCHRG LB"]) == [[]]
    # ... but what follows is measured against it.
    assert _run(["OB DISCHRG LB", "OL CHRG"]) == [[], ["power_restored"]]
    assert _run(["OL", "OL"]) == [[], []]


def test_mains_loss_and_return() -> None:
    assert _run(["OL CHRG", "OB DISCHRG", "OB DISCHRG", "OL CHRG", "OL"]) == [
        [],
        ["power_lost"],
        [],
        ["power_restored"],
        [],
    ]


def test_flags_appearing_each_fire_once() -> None:
    assert _run(["OL", "OB LB", "OB LB", "OB LB RB", "OB LB RB FSD", "OL RB", "OL RB LB"]) == [
        [],
        ["power_lost", "battery_low"],
        [],
        ["replace_battery"],
        ["forced_shutdown"],
        ["power_restored"],
        ["battery_low"],  # LB went away and came back
    ]
    # Several at once, in table order.
    assert _run(["OL", "FSD OB RB LB"]) == [
        [],
        ["power_lost", "battery_low", "replace_battery", "forced_shutdown"],
    ]


def test_unknown_and_neutral_tokens() -> None:
    # Tokens that are not power events, unknown tokens, and case do not matter.
    assert _run(["OL", "OL BOOST XYZZY", "ol trim", "OL HB CAL"]) == [[], [], [], []]
    # A status with neither OL nor OB (output off, driver waiting) keeps the power source:
    # OB -> OFF -> OL is still "power restored", OL -> OFF -> OL is nothing.
    assert _run(["OB", "OFF", "OL"]) == [[], [], ["power_restored"]]
    assert _run(["OL", "OFF", "WAIT", "OL"]) == [[], [], [], []]
    # Never OL nor OB before: OB is a new loss of power.
    assert _run(["OFF", "OB"]) == [[], ["power_lost"]]
    assert _run(["", "OL", "OB"]) == [[], [], ["power_lost"]]


def test_stale_and_recovered() -> None:
    assert _run(["OL", "stale", "stale", "OL"]) == [
        [],
        ["communication_lost"],
        [],
        ["communication_restored"],
    ]
    # What changed while the UPS was unreachable is reported when it is back.
    assert _run(["OB", "stale", "OL"]) == [
        [],
        ["communication_lost"],
        ["communication_restored", "power_restored"],
    ]
    assert _run(["OL", "stale", "OB LB"]) == [
        [],
        ["communication_lost"],
        ["communication_restored", "power_lost", "battery_low"],
    ]
    # An LB that was already there before the loss is not new.
    assert _run(["OB LB", "stale", "OB LB"]) == [[], ["communication_lost"], ["communication_restored"]]


def test_server_down_and_ups_gone() -> None:
    assert _run(["OL", "down", "down", "OL"]) == [
        [],
        ["communication_lost"],
        [],
        ["communication_restored"],
    ]
    assert _run(["OL", "gone", "gone", "OB"]) == [
        [],
        ["communication_lost"],
        [],
        ["communication_restored", "power_lost"],
    ]


def test_unavailable_at_first() -> None:
    # Unreachable at setup: its first data is a baseline for the status, but the
    # communication coming back is an event.
    assert _run(["stale", "OB LB", "OL"]) == [[], ["communication_restored"], ["power_restored"]]
    assert _run(["gone", "gone", "OL LB"]) == [[], [], ["communication_restored"]]


def test_snapshot_keeps_last_values_while_unavailable() -> None:
    ok = observe(None, UpsState("u", "", {"ups.status": "OB LB", "battery.charge": "9"}))
    stale = observe(ok, UpsState("u", "", {}, error="DATA-STALE"))
    assert not stale.available
    assert stale.tokens == frozenset({"OB", "LB"})
    assert stale.on_battery is True
    assert stale.variables["battery.charge"] == "9"
    # Empty variables mean unavailable too (UpsState.available).
    assert not observe(ok, UpsState("u", "", {})).available


# ---------------------------------------------------------------- end to end helpers


def event_entity(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> str:
    """Entity id of a UPS's event entity (found through its device: the name comes from translations)."""
    registry = er.async_get(hass)
    device = ups_device(hass, entry, ups)
    ids = [e.entity_id for e in er.async_entries_for_device(registry, device.id) if e.domain == "event"]
    assert len(ids) == 1, ids
    return ids[0]


def attrs(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return dict(state.attributes)


def types_for(events: list[Event[NutBridgeEventData]], ups: str) -> list[str]:
    return [e.data["type"] for e in events if e.data["ups"] == ups]


def device_trigger_automation(device_id: str, event_type: str) -> dict[str, Any]:
    """An automation whose action records the trigger in the test.fired service."""
    return {
        "alias": f"{event_type} on {device_id}",
        "triggers": [{"trigger": "device", "domain": DOMAIN, "device_id": device_id, "type": event_type}],
        "actions": [
            {
                "action": "test.fired",
                "data": {
                    "type": "{{ trigger.event.data.type }}",
                    "platform": "{{ trigger.platform }}",
                    "ups": "{{ trigger.event.data.ups }}",
                    "status": "{{ trigger.event.data.status }}",
                    "charge": "{{ trigger.event.data.battery_charge }}",
                },
            }
        ],
    }


async def watch_triggers(hass: HomeAssistant, *triggers: tuple[dr.DeviceEntry, str]) -> list[ServiceCall]:
    """One automation per (device, event type) device trigger; the test.fired calls they make."""
    calls = async_mock_service(hass, "test", "fired")
    await setup_automations(hass, *(device_trigger_automation(device.id, t) for device, t in triggers))
    return calls


def fired(calls: list[ServiceCall], ups: str) -> list[str]:
    return [c.data["type"] for c in calls if c.data["ups"] == ups]


# ---------------------------------------------------------------- end to end


async def test_device_triggers_listed_for_ups_devices_only(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, sim.id)
    ours = sorted(t["type"] for t in triggers if t["domain"] == DOMAIN)
    assert ours == sorted(EVENT_TYPES)
    assert all(t["device_id"] == sim.id and t["platform"] == "device" for t in triggers)

    server = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, str(entry.unique_id)), entry.entry_id)
    assert server is not None
    server_triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, server.id)
    assert [t for t in server_triggers if t["domain"] == DOMAIN] == []

    # A device of another integration.
    other_entry = MockConfigEntry(domain="other")
    other_entry.add_to_hass(hass)
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={("other", "x")}, name="other"
    )
    from custom_components.nut_bridge import device_trigger

    assert await device_trigger.async_get_triggers(hass, other.id) == []
    assert await device_trigger.async_get_triggers(hass, "no-such-device") == []


async def test_mains_loss_flips_on_battery_and_fires_the_trigger(hass: HomeAssistant, bridge: Bridge) -> None:
    """The acceptance test: mains loss commanded on the simulated UPS, end to end."""
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    dummy = ups_device(hass, entry, "dummy")
    sim_event_id, dummy_event_id = event_entity(hass, entry, "sim"), event_entity(hass, entry, "dummy")
    events = async_capture_events(hass, EVENT_NUT_BRIDGE)
    calls = await watch_triggers(hass, (sim, "power_lost"), (sim, "power_restored"), (dummy, "power_lost"))
    assert state_of(hass, "binary_sensor.sim_on_battery") == "off"
    assert events == []  # setup is a baseline

    await instcmd(bridge, "test.failure.start")
    await wait_for("power_lost trigger", lambda: fired(calls, "sim") == ["power_lost"])
    assert state_of(hass, "binary_sensor.sim_on_battery") == "on"
    call = calls[-1].data
    assert call["platform"] == "device"
    assert "OB" in call["status"].split()
    assert 0 < float(call["charge"]) <= 100

    event = events[-1].data
    assert event == {
        "device_id": sim.id,
        "config_entry_id": entry.entry_id,
        "ups": "sim",
        "type": "power_lost",
        "status": call["status"],
        "battery_charge": str(call["charge"]),  # the template rendered "100" as a number
        "battery_runtime": event["battery_runtime"],
    }
    assert float(event["battery_runtime"] or "0") > 0

    assert state_of(hass, sim_event_id) not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    sim_event = attrs(hass, sim_event_id)
    assert sim_event["event_type"] == "power_lost"
    assert sim_event["status"] == call["status"]
    assert sim_event["battery_charge"] == event["battery_charge"]
    assert state_of(hass, dummy_event_id) == STATE_UNKNOWN  # the other UPS saw nothing

    await instcmd(bridge, "test.failure.stop")
    await wait_for("power_restored trigger", lambda: fired(calls, "sim") == ["power_lost", "power_restored"])
    assert state_of(hass, "binary_sensor.sim_on_battery") == "off"
    assert attrs(hass, sim_event_id)["event_type"] == "power_restored"
    assert "OL" in attrs(hass, sim_event_id)["status"].split()
    assert fired(calls, "dummy") == []
    assert types_for(events, "sim") == ["power_lost", "power_restored"]
    assert types_for(events, "dummy") == []


async def test_dummy_status_flags(hass: HomeAssistant, bridge: Bridge) -> None:
    """LB, RB and FSD written into the dummy-ups data file."""
    entry = await setup_entry(hass, bridge)
    dummy = ups_device(hass, entry, "dummy")
    dummy_event_id = event_entity(hass, entry, "dummy")
    events = async_capture_events(hass, EVENT_NUT_BRIDGE)
    calls = await watch_triggers(
        hass, *((dummy, t) for t in ("battery_low", "replace_battery", "forced_shutdown", "power_restored"))
    )

    steps = [
        ("OB LB", ["power_lost", "battery_low"]),
        ("OB LB RB", ["replace_battery"]),
        ("OB LB RB FSD", ["forced_shutdown"]),
        ("OL RB", ["power_restored"]),
    ]
    want: list[str] = []
    for status, new in steps:
        bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", f"ups.status: {status}"))
        want = [*want, *new]
        await wait_for(f"events after {status}", lambda want=want: types_for(events, "dummy") == want)
        assert attrs(hass, dummy_event_id)["event_type"] == new[-1]
        assert attrs(hass, dummy_event_id)["status"] == status
        assert attrs(hass, dummy_event_id)["battery_charge"] == "87"
    await hass.async_block_till_done()
    assert fired(calls, "dummy") == ["battery_low", "replace_battery", "forced_shutdown", "power_restored"]
    assert calls[0].data["status"] == "OB LB"
    assert state_of(hass, "binary_sensor.dummy_replace_battery") == "on"
    assert types_for(events, "sim") == []


async def test_stale_ups_loses_and_regains_communication(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    dummy = ups_device(hass, entry, "dummy")
    dummy_event_id = event_entity(hass, entry, "dummy")
    events = async_capture_events(hass, EVENT_NUT_BRIDGE)

    bridge.dummy_file.unlink()  # the driver loses its data: DATA-STALE for this UPS only
    await wait_for("communication_lost", lambda: types_for(events, "dummy") == ["communication_lost"], 30)
    assert events[-1].data["device_id"] == dummy.id
    assert events[-1].data["status"] == "OL"  # the last status seen
    assert state_of(hass, "sensor.dummy_battery_charge") == STATE_UNAVAILABLE
    # The event entity stays available to show it.
    assert attrs(hass, dummy_event_id)["event_type"] == "communication_lost"
    assert types_for(events, "sim") == []

    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OB"))
    await wait_for(
        "communication_restored",
        lambda: types_for(events, "dummy") == ["communication_lost", "communication_restored", "power_lost"],
        30,
    )
    assert attrs(hass, dummy_event_id)["event_type"] == "power_lost"


async def test_bridge_down_and_back(hass: HomeAssistant, bridge: Bridge) -> None:
    """The bridge process stops: communication lost for every UPS; it starts again: restored."""
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    sim_event_id, dummy_event_id = event_entity(hass, entry, "sim"), event_entity(hass, entry, "dummy")
    events = async_capture_events(hass, EVENT_NUT_BRIDGE)
    calls = await watch_triggers(hass, (sim, "communication_lost"), (sim, "communication_restored"))
    await instcmd(bridge, "test.failure.start")
    await wait_for("power_lost", lambda: types_for(events, "sim") == ["power_lost"])

    bridge.proc.stop()
    await wait_for(
        "communication_lost for every UPS",
        lambda: types_for(events, "sim")[1:] == ["communication_lost"]
        and types_for(events, "dummy") == ["communication_lost"],
    )
    assert not entry.runtime_data.coordinator.last_update_success
    assert state_of(hass, "binary_sensor.sim_on_battery") == STATE_UNAVAILABLE
    for entity_id in (sim_event_id, dummy_event_id):
        assert state_of(hass, entity_id) != STATE_UNAVAILABLE
        assert attrs(hass, entity_id)["event_type"] == "communication_lost"
    assert "OB" in attrs(hass, sim_event_id)["status"].split()  # the last status seen
    await wait_for("communication_lost trigger", lambda: fired(calls, "sim") == ["communication_lost"])

    # A new bridge on the same port: a fresh simulated UPS, on line power again.
    bridge.proc = BridgeProcess.start(bridge.cfg)
    await wait_for(
        "communication_restored for every UPS",
        lambda: "communication_restored" in types_for(events, "sim")
        and "communication_restored" in types_for(events, "dummy"),
        30,
    )
    await wait_for("power_restored", lambda: "power_restored" in types_for(events, "sim"))
    sim_types = types_for(events, "sim")
    assert sim_types[:3] == ["power_lost", "communication_lost", "communication_restored"]
    assert sim_types.index("power_restored") > sim_types.index("communication_restored")
    assert "power_lost" not in types_for(events, "dummy")
    await wait_for("restored trigger", lambda: "communication_restored" in fired(calls, "sim"))
    assert state_of(hass, "binary_sensor.sim_on_battery") == "off"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_stops_events(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    events = async_capture_events(hass, EVENT_NUT_BRIDGE)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await instcmd(bridge, "test.failure.start")
    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OB LB"))
    await asyncio.sleep(1.5)
    await hass.async_block_till_done()
    assert events == []


@pytest.mark.parametrize("event_type", ["not_a_type", ""])
async def test_trigger_schema_rejects_unknown_types(hass: HomeAssistant, event_type: str) -> None:
    from custom_components.nut_bridge.device_trigger import TRIGGER_SCHEMA

    base = {"platform": "device", "domain": DOMAIN, "device_id": "abc"}
    assert TRIGGER_SCHEMA({**base, "type": "battery_low"})["type"] == "battery_low"
    with pytest.raises(Exception, match="type"):
        TRIGGER_SCHEMA({**base, "type": event_type})
