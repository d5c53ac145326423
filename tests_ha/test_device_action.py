"""Device actions (the UPS's instant commands) against a real bridge.

The simulated UPS has two outlets; the dummy UPS declares its commands in the data
file (``#CMD:`` lines), one of them in mixed case, others that are not offered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import probatio as vol
import pytest
from homeassistant.components.device_automation import (
    DeviceAutomationType,
    InvalidDeviceAutomationConfig,
)
from homeassistant.components.device_automation.action import (
    async_call_action_from_config,
    async_validate_action_config,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_get_device_automations

from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry, server_identifier
from custom_components.nut_bridge.device_action import ACTION_SCHEMA, ACTION_TYPES, COMMANDS, action_type
from nutbridge.client import NutClient

from .conftest import (
    DUMMY_DEV,
    Bridge,
    get_var,
    running_bridge,
    setup_automations,
    setup_entry,
    ups_device,
    wait_var,
)

STRINGS = Path(__file__).resolve().parents[1] / "custom_components" / "nut_bridge" / "strings.json"

# A standard command in mixed case, plus commands that are not offered as device actions.
DUMMY_CMDS = [
    "Beeper.Enable",
    "test.battery.start",
    "outlet.1.load.on",
    "experimental.ecomode.start",
    "x.y_z",
]


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like conftest's bridge; the simulated UPS has outlets, the dummy one declares commands."""
    commands = "".join(f"#CMD:{c}\n" for c in DUMMY_CMDS)
    with running_bridge(tmp_path, outlets=2, dummy_dev=DUMMY_DEV + commands) as b:
        yield b


def _server_device(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device_by_identifier(server_identifier(entry), entry.entry_id)
    assert device is not None
    return device


async def _types(hass: HomeAssistant, device_id: str) -> list[str]:
    actions = await async_get_device_automations(hass, DeviceAutomationType.ACTION, device_id)
    ours = [a for a in actions if a["domain"] == DOMAIN]
    assert all(a["device_id"] == device_id for a in ours)
    return [a["type"] for a in ours]


async def _commands(bridge: Bridge, ups: str) -> list[str]:
    async with NutClient("127.0.0.1", bridge.port) as client:
        return await client.list_cmd(ups)


def _action(device_id: str, type_: str) -> dict[str, Any]:
    return {"domain": DOMAIN, "device_id": device_id, "type": type_}


async def _call(hass: HomeAssistant, device_id: str, type_: str) -> None:
    """Validate and run a device action the way a script does."""
    config = await async_validate_action_config(hass, _action(device_id, type_))
    await async_call_action_from_config(hass, config, {}, None)


# ---------------------------------------------------------------- listing


async def test_actions_match_the_ups_commands(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    sim_commands = await _commands(bridge, "sim")
    assert "outlet.1.load.on" in sim_commands and "test.failure.start" in sim_commands
    # Every command of the simulated UPS but the per-outlet ones is a standard one.
    want = sorted(action_type(c) for c in sim_commands if not c.startswith("outlet."))
    assert sorted(await _types(hass, sim.id)) == want
    assert {"beeper_disable", "test_failure_start", "test_battery_start_quick", "load_off_delay"} <= set(want)

    # The dummy UPS: its mixed-case standard command is offered; outlet, experimental
    # and unknown ones are not (nor are the driver-core ones like driver.reload).
    dummy_commands = await _commands(bridge, "dummy")
    assert set(DUMMY_CMDS) <= set(dummy_commands)
    dummy_types = await _types(hass, ups_device(hass, entry, "dummy").id)
    assert {"beeper_enable", "test_battery_start"} <= set(dummy_types)
    assert sorted(dummy_types) == sorted(
        action_type(c) for c in dummy_commands if action_type(c) in ACTION_TYPES
    )
    assert not any(t.startswith(("outlet", "experimental", "driver", "x_")) for t in dummy_types)


async def test_server_and_foreign_devices_have_no_actions(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    assert await _types(hass, _server_device(hass, entry).id) == []

    other_entry = MockConfigEntry(domain="other")
    other_entry.add_to_hass(hass)
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={(DOMAIN, f"{entry.unique_id}_sim2")}, name="other"
    )
    from custom_components.nut_bridge import device_action

    # Even with an identifier that looks like ours, another integration's device is not a UPS.
    assert await device_action.async_get_actions(hass, other.id) == []
    assert await device_action.async_get_actions(hass, "no-such-device") == []

    # An unloaded entry offers nothing.
    sim = ups_device(hass, entry, "sim")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await device_action.async_get_actions(hass, sim.id) == []


def test_every_offered_type_is_translated() -> None:
    strings = json.loads(STRINGS.read_text())["device_automation"]["action_type"]
    assert len(ACTION_TYPES) == len(COMMANDS)  # no two commands share a type
    assert set(strings) == set(ACTION_TYPES)
    assert all(ACTION_TYPES[action_type(c)] == c for c in COMMANDS)
    assert action_type("Test.Battery.Start.Quick") == "test_battery_start_quick"


# ---------------------------------------------------------------- running


async def test_automation_runs_device_actions(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    assert await get_var(bridge, "ups.beeper.status") == "enabled"
    assert "OL" in (await get_var(bridge, "ups.status")).split()
    await setup_automations(
        hass,
        {
            "alias": "ups actions",
            "triggers": [{"trigger": "event", "event_type": "run_ups_actions"}],
            "actions": [_action(sim.id, "beeper_disable"), _action(sim.id, "test_failure_start")],
        },
    )
    hass.bus.async_fire("run_ups_actions")
    await hass.async_block_till_done()
    await wait_var(bridge, "ups.beeper.status", "disabled")
    await wait_var(bridge, "ups.status", lambda v: "OB" in v.split())


async def test_command_spelled_as_the_ups_lists_it(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    dummy = ups_device(hass, entry, "dummy")
    # The UPS lists "Beeper.Enable": that is what runs (the dummy driver accepts it).
    await _call(hass, dummy.id, "beeper_enable")
    # The lower-case spelling is not in its list.
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "run_command", {"device_id": dummy.id, "command": "beeper.enable"}, blocking=True
        )
    assert err.value.translation_key == "command_not_supported"


async def test_command_the_ups_does_not_list(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    assert "reset.watchdog" not in await _commands(bridge, "sim")
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, sim.id, "reset_watchdog")
    assert err.value.translation_key == "command_not_supported"
    assert "reset.watchdog" in str(err.value)


async def test_server_device_removed_device_and_unloaded_entry(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    server = _server_device(hass, entry)
    sim, dummy = (ups_device(hass, entry, ups) for ups in ("sim", "dummy"))
    # The server device is ours but not a UPS.
    with pytest.raises(InvalidDeviceAutomationConfig, match="not a NUT Bridge UPS"):
        await async_validate_action_config(hass, _action(server.id, "beeper_disable"))

    # A UPS device deleted after its automation was loaded.
    config = await async_validate_action_config(hass, _action(dummy.id, "beeper_enable"))
    dr.async_get(hass).async_remove_device(dummy.id)
    with pytest.raises(ServiceValidationError) as err:
        await async_call_action_from_config(hass, config, {}, None)
    assert err.value.translation_key == "invalid_target"

    config = await async_validate_action_config(hass, _action(sim.id, "beeper_disable"))
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await async_call_action_from_config(hass, config, {}, None)
    assert err.value.translation_key == "entry_not_loaded"
    assert await get_var(bridge, "ups.beeper.status") == "enabled"


async def test_user_without_permission(hass: HomeAssistant, bridge: Bridge) -> None:
    # An upsmon primary account may log in but not run commands.
    entry = await setup_entry(hass, bridge, user="monprimary", password="mp")
    sim = ups_device(hass, entry, "sim")
    assert "beeper_disable" in await _types(hass, sim.id)
    assert await async_setup_component(
        hass, "script", {"script": {"quiet_ups": {"sequence": [_action(sim.id, "beeper_disable")]}}}
    )
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("script", "quiet_ups", blocking=True)
    assert err.value.translation_key == "access_denied"
    assert "upsd.users" in str(err.value)
    issues = ir.async_get(hass).issues
    assert (DOMAIN, f"insufficient_permissions_{entry.entry_id}") in issues
    assert await get_var(bridge, "ups.beeper.status") == "enabled"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("type_", ["no_such_type", "", "beeper.disable", "outlet_1_load_on"])
def test_schema_rejects_unknown_types(type_: str) -> None:
    base = {"domain": DOMAIN, "device_id": "abc"}
    assert ACTION_SCHEMA({**base, "type": "beeper_disable"})["type"] == "beeper_disable"
    with pytest.raises(vol.Invalid, match="type"):
        ACTION_SCHEMA({**base, "type": type_})


async def test_validation_rejects_bad_configs(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    assert (await async_validate_action_config(hass, _action(sim.id, "test_failure_start")))["type"] == (
        "test_failure_start"
    )
    with pytest.raises(vol.Invalid):
        await async_validate_action_config(hass, _action(sim.id, "no_such_type"))

    other_entry = MockConfigEntry(domain="other")
    other_entry.add_to_hass(hass)
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={("other", "x")}, name="other"
    )
    with pytest.raises(InvalidDeviceAutomationConfig, match="no config entry from domain"):
        await async_validate_action_config(hass, _action(other.id, "beeper_disable"))
    with pytest.raises(InvalidDeviceAutomationConfig, match="Unknown device"):
        await async_validate_action_config(hass, _action("no-such-device", "beeper_disable"))

    # An automation with an invalid device action is not set up, and runs nothing.
    await setup_automations(
        hass,
        {
            "id": "bad",
            "alias": "bad",
            "triggers": [{"trigger": "event", "event_type": "bad_ups_action"}],
            "actions": [_action(sim.id, "no_such_type")],
        },
    )
    state = hass.states.get("automation.bad")
    assert state is not None and state.state == "unavailable"
    hass.bus.async_fire("bad_ups_action")
    await hass.async_block_till_done()
    assert await get_var(bridge, "ups.beeper.status") == "enabled"
