"""Controls against a real bridge: the run_command / set_variable / shutdown actions, and a
user who may not act. Each control platform's own entities are in test_<platform>.py."""

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
