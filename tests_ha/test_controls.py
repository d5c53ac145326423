"""Controls against a real bridge: outlet switches, numbers, selects, texts, service actions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr

from custom_components.nut_bridge.const import DOMAIN

from .conftest import Bridge, get_var, running_bridge, setup_entry, wait_var


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like conftest's bridge, but the simulated UPS has two switchable outlets."""
    with running_bridge(tmp_path, outlets=2) as b:
        yield b


async def test_outlet_switch(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert hass.states.get("switch.sim_outlet_1").state == "on"
    assert hass.states.get("switch.sim_outlet_2") is not None
    assert hass.states.get("button.sim_cycle_outlet_1") is not None
    assert hass.states.get("button.sim_quick_battery_test") is not None
    assert hass.states.get("switch.dummy_outlet_1") is None

    await hass.services.async_call("switch", "turn_off", {"entity_id": "switch.sim_outlet_1"}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "off")
    assert await get_var(bridge, "outlet.2.status") == "on"

    await hass.services.async_call("switch", "turn_on", {"entity_id": "switch.sim_outlet_1"}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "on")


async def test_number_select_text(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    state = hass.states.get("number.sim_shutdown_delay")
    assert state is not None
    assert (state.attributes["min"], state.attributes["max"]) == (0, 3600)

    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.sim_shutdown_delay", "value": 120}, blocking=True
    )
    await wait_var(bridge, "ups.delay.shutdown", "120")

    select = hass.states.get("select.sim_beeper_status")
    assert select is not None and select.attributes["options"] == ["enabled", "disabled", "muted"]
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.sim_beeper_status", "option": "muted"}, blocking=True
    )
    await wait_var(bridge, "ups.beeper.status", "muted")

    text = hass.states.get("text.sim_ups_id")
    assert text is not None and text.attributes["max"] == 16
    await hass.services.async_call(
        "text", "set_value", {"entity_id": "text.sim_ups_id", "value": "rack-7"}, blocking=True
    )
    await wait_var(bridge, "ups.id", "rack-7")


async def test_run_command_service(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    devices = dr.async_get(hass)
    device = devices.async_get_device_by_identifier((DOMAIN, f"{entry.unique_id}_sim"), entry.entry_id)
    assert device is not None

    response = await hass.services.async_call(
        DOMAIN,
        "run_command",
        {"device_id": device.id, "command": "beeper.disable"},
        blocking=True,
        return_response=True,
    )
    assert response == {"ups": "sim", "command": "beeper.disable", "result": "SUCCESS"}
    await wait_var(bridge, "ups.beeper.status", "disabled")

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "run_command",
            {"config_entry_id": entry.entry_id, "ups": "sim", "command": "no.such.command"},
            blocking=True,
        )
    assert err.value.translation_key == "command_not_supported"
    assert "no.such.command" in str(err.value)

    await hass.services.async_call(
        DOMAIN,
        "set_variable",
        {"config_entry_id": entry.entry_id, "ups": "sim", "variable": "ups.delay.start", "value": "30"},
        blocking=True,
    )
    await wait_var(bridge, "ups.delay.start", "30")

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "set_variable",
            {"device_id": device.id, "variable": "ups.delay.shutdown", "value": "99999"},
            blocking=True,
        )
    assert err.value.translation_key == "invalid_value"
    assert "0..3600" in str(err.value)

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "set_variable",
            {"device_id": device.id, "variable": "ups.beeper.status", "value": "loud"},
            blocking=True,
        )
    assert err.value.translation_key == "invalid_value"

    await hass.services.async_call(
        DOMAIN, "shutdown", {"device_id": device.id, "mode": "load_off", "delay": 600}, blocking=True
    )


async def test_user_without_permission(hass: HomeAssistant, bridge: Bridge) -> None:
    # An upsmon primary account may log in but not run commands or set variables.
    await setup_entry(hass, bridge, user="monprimary", password="mp")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "switch", "turn_off", {"entity_id": "switch.sim_outlet_1"}, blocking=True
        )
    assert err.value.translation_key == "access_denied"
    assert "upsd.users" in str(err.value)
    assert await get_var(bridge, "outlet.1.status") == "on"
