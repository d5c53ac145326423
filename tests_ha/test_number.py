"""Number platform against a real bridge: writable numeric variables with a RANGE."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from .conftest import Bridge, assert_registered, attributes_of, setup_entry, state_of, wait_var


async def test_known_variable(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "number.sim_shutdown_delay") == "20.0"
    attributes = attributes_of(hass, "number.sim_shutdown_delay")
    assert (attributes["min"], attributes["max"]) == (0, 3600)
    assert (attributes["step"], attributes["mode"], attributes["unit_of_measurement"]) == (1, "box", "s")
    assert attributes["device_class"] == "duration"
    assert_registered(
        hass, bridge, "number.sim_shutdown_delay", ups="sim", key="ups.delay.shutdown",
        category=EntityCategory.CONFIG,
    )

    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.sim_shutdown_delay", "value": 120}, blocking=True
    )
    await wait_var(bridge, "ups.delay.shutdown", "120")


async def test_unknown_variable_is_disabled(hass: HomeAssistant, bridge: Bridge) -> None:
    """A writable number without a known meaning is named after the NUT variable."""
    await setup_entry(hass, bridge)
    registry_entry = assert_registered(
        hass, bridge, "number.sim_experimental_sim_load", ups="sim", key="experimental.sim.load",
        category=EntityCategory.CONFIG, enabled=False,
    )
    assert registry_entry.original_name == "experimental.sim.load"
    assert registry_entry.translation_key is None
