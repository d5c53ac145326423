"""Service actions against a real bridge: targets, validation, shutdown modes, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.nut_bridge.const import DOMAIN
from tests.support.realnut import BridgeProcess

from .conftest import Bridge, get_var, running_bridge, setup_entry, ups_device, wait_var


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like conftest's bridge; the simulated UPS has two outlets (load_off switches them)."""
    with running_bridge(tmp_path, outlets=2) as b:
        yield b


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> None:
    await hass.services.async_call(DOMAIN, service, data, blocking=True)


async def _invalid(hass: HomeAssistant, service: str, data: dict[str, Any]) -> str:
    with pytest.raises(ServiceValidationError) as err:
        if service == "get_events":  # response-only
            await _events(hass, data)
        else:
            await _call(hass, service, data)
    assert err.value.translation_key is not None
    return err.value.translation_key


async def test_targets(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    cmd = {"command": "beeper.enable"}
    assert await _invalid(hass, "run_command", cmd) == "invalid_target"
    assert await _invalid(hass, "run_command", {**cmd, "device_id": "nope"}) == "invalid_target"
    assert await _invalid(hass, "run_command", {**cmd, "config_entry_id": "nope", "ups": "sim"}) == (
        "invalid_target"
    )
    # Two UPS on the server: the entry alone does not say which.
    assert await _invalid(hass, "run_command", {**cmd, "config_entry_id": entry.entry_id}) == (
        "invalid_target"
    )
    assert await _invalid(
        hass, "run_command", {**cmd, "config_entry_id": entry.entry_id, "ups": "ghost"}
    ) == "invalid_target"

    # A device of another integration is no target.
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    foreign = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    assert await _invalid(hass, "run_command", {**cmd, "device_id": foreign.id}) == "invalid_target"

    # An entry of another integration, and an entry that is not loaded.
    assert await _invalid(
        hass, "run_command", {**cmd, "config_entry_id": other.entry_id, "ups": "sim"}
    ) == "invalid_target"
    await _call(hass, "run_command", {**cmd, "device_id": ups_device(hass, entry, "sim").id})
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await _invalid(
        hass, "run_command", {**cmd, "config_entry_id": entry.entry_id, "ups": "sim"}
    ) == "entry_not_loaded"


async def test_set_variable_validation(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    target = {"config_entry_id": entry.entry_id, "ups": "sim"}
    for variable, value in (
        ("battery.charge", "50"),  # read-only
        ("ups.id", "x" * 17),  # STRING:16
        ("ups.delay.shutdown", "soon"),  # not a number
        ("ups.delay.shutdown", "-1"),  # below the range
    ):
        key = await _invalid(hass, "set_variable", {**target, "variable": variable, "value": value})
        assert key == ("variable_not_writable" if variable == "battery.charge" else "invalid_value")
    assert await get_var(bridge, "ups.delay.shutdown") != "-1"

    await _call(hass, "set_variable", {**target, "variable": "ups.id", "value": "x" * 16})
    await wait_var(bridge, "ups.id", "x" * 16)


async def test_shutdown_modes(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    target = {"config_entry_id": entry.entry_id, "ups": "sim"}
    await _call(hass, "shutdown", {**target, "mode": "load_off"})
    await wait_var(bridge, "outlet.1.status", "off")
    await _call(hass, "run_command", {**target, "command": "load.on"})
    await wait_var(bridge, "outlet.1.status", "on")

    await _call(hass, "shutdown", {**target, "mode": "fsd"})
    status = await get_var(bridge, "ups.status")
    assert status.split()[0] == "FSD"


async def test_fsd_refused_and_server_gone(hass: HomeAssistant, bridge: Bridge) -> None:
    # A user who may SET (so setup accepts the credentials) but not FSD.
    bridge.cfg.users += "[setter]\n    password = st\n    actions = SET\n"
    bridge.proc.stop()
    bridge.proc = BridgeProcess.start(bridge.cfg)
    entry = await setup_entry(hass, bridge, user="setter", password="st")
    target = {"config_entry_id": entry.entry_id, "ups": "sim"}
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "shutdown", {**target, "mode": "fsd"})
    assert err.value.translation_key == "access_denied"
    assert "FSD" not in (await get_var(bridge, "ups.status")).split()

    bridge.proc.stop()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "run_command", {**target, "command": "test.battery.start.quick"})
    assert err.value.translation_key == "command_failed"
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "set_variable", {**target, "variable": "ups.delay.start", "value": "5"})
    assert err.value.translation_key == "command_failed"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def _events(hass: HomeAssistant, data: dict[str, Any]) -> list[dict[str, Any]]:
    response = await hass.services.async_call(DOMAIN, "get_events", data, blocking=True, return_response=True)
    assert response is not None
    events = response["events"]
    assert isinstance(events, list)
    return events


async def test_get_events(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    target = {"config_entry_id": entry.entry_id, "ups": "sim"}
    await _call(hass, "run_command", {**target, "command": "beeper.disable"})
    await wait_var(bridge, "ups.beeper.status", "disabled")

    events = await _events(hass, {"config_entry_id": entry.entry_id})
    commands = [e for e in events if e.get("kind") == "command"]
    assert commands and commands[-1]["ups"] == "sim"
    assert "beeper.disable" in commands[-1]["detail"]
    assert commands[-1]["user"] == "admin"  # the entry's user may run commands: sees who
    assert "s3cr3t" not in repr(events)

    # A device target narrows to its UPS; count bounds the answer.
    only_dummy = await _events(hass, {"device_id": ups_device(hass, entry, "dummy").id, "count": 5})
    assert len(only_dummy) <= 5
    assert all(e.get("ups") in ("dummy", None) for e in only_dummy)
    assert await _invalid(hass, "get_events", {"config_entry_id": entry.entry_id, "ups": "ghost"}) == (
        "invalid_target"
    )


async def test_get_events_from_a_server_without_history(
    hass: HomeAssistant, bridge_without_push: Bridge
) -> None:
    # PUSH false turns the bridge's extensions off: it answers LIST EVENT as upsd does.
    entry = await setup_entry(hass, bridge_without_push)
    assert await _invalid(hass, "get_events", {"config_entry_id": entry.entry_id}) == "events_not_supported"
    bridge_without_push.proc.stop()
    with pytest.raises(HomeAssistantError) as err:
        await _events(hass, {"config_entry_id": entry.entry_id})
    assert err.value.translation_key == "command_failed"
