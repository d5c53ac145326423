"""Text platform against a real bridge: writable STRING:n variables."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from .conftest import Bridge, assert_registered, attributes_of, setup_entry, state_of, wait_var


async def test_known_variables(hass: HomeAssistant, outlet_bridge: Bridge) -> None:
    bridge = outlet_bridge
    await setup_entry(hass, bridge)
    assert state_of(hass, "text.sim_ups_id") == "sim"
    assert attributes_of(hass, "text.sim_ups_id")["max"] == 16
    assert_registered(
        hass, bridge, "text.sim_ups_id", ups="sim", key="ups.id", category=EntityCategory.CONFIG
    )
    assert state_of(hass, "text.sim_outlet_1_description") == "Outlet 1"
    assert attributes_of(hass, "text.sim_outlet_1_description")["max"] == 20
    assert_registered(
        hass, bridge, "text.sim_outlet_1_description", ups="sim", key="outlet.1.desc",
        category=EntityCategory.CONFIG,
    )

    await hass.services.async_call(
        "text", "set_value", {"entity_id": "text.sim_ups_id", "value": "rack-7"}, blocking=True
    )
    await wait_var(bridge, "ups.id", "rack-7")


async def test_other_strings_are_disabled(hass: HomeAssistant, bridge: Bridge) -> None:
    """dummy-ups lets every variable of its file be set: named after the variable, disabled."""
    await setup_entry(hass, bridge)
    registry_entry = assert_registered(
        hass, bridge, "text.dummy_ups_model", ups="dummy", key="ups.model",
        category=EntityCategory.CONFIG, enabled=False,
    )
    assert registry_entry.original_name == "ups.model"
