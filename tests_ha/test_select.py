"""Select platform against a real bridge: writable variables with an ENUM."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from .conftest import Bridge, assert_registered, attributes_of, setup_entry, state_of, wait_var


async def test_known_variable(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "select.sim_beeper_status") == "enabled"
    assert attributes_of(hass, "select.sim_beeper_status")["options"] == ["enabled", "disabled", "muted"]
    assert_registered(
        hass, bridge, "select.sim_beeper_status", ups="sim", key="ups.beeper.status",
        category=EntityCategory.CONFIG,
    )

    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.sim_beeper_status", "option": "muted"}, blocking=True
    )
    await wait_var(bridge, "ups.beeper.status", "muted")


async def test_unknown_variable_is_disabled(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    registry_entry = assert_registered(
        hass, bridge, "select.sim_experimental_sim_mains", ups="sim", key="experimental.sim.mains",
        category=EntityCategory.CONFIG, enabled=False,
    )
    assert registry_entry.original_name == "experimental.sim.mains"
