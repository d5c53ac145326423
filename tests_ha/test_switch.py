"""Switch platform against a real bridge: outlets (outlet.N.load.on/off) and the beeper."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from .conftest import Bridge, assert_registered, attributes_of, get_var, setup_entry, state_of, wait_var


async def test_outlet_switch(hass: HomeAssistant, outlet_bridge: Bridge) -> None:
    bridge = outlet_bridge
    await setup_entry(hass, bridge)
    assert state_of(hass, "switch.sim_outlet_1") == "on"
    assert attributes_of(hass, "switch.sim_outlet_1")["device_class"] == "outlet"
    assert_registered(hass, bridge, "switch.sim_outlet_1", ups="sim", key="outlet.1.status")
    assert hass.states.get("switch.sim_outlet_2") is not None
    assert hass.states.get("switch.dummy_outlet_1") is None

    await hass.services.async_call("switch", "turn_off", {"entity_id": "switch.sim_outlet_1"}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "off")
    assert await get_var(bridge, "outlet.2.status") == "on"

    await hass.services.async_call("switch", "turn_on", {"entity_id": "switch.sim_outlet_1"}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "on")


async def test_beeper_switch(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "switch.sim_beeper") == "on"
    assert_registered(
        hass, bridge, "switch.sim_beeper", ups="sim", key="ups.beeper.status", category=EntityCategory.CONFIG
    )
    await hass.services.async_call("switch", "turn_off", {"entity_id": "switch.sim_beeper"}, blocking=True)
    await wait_var(bridge, "ups.beeper.status", "disabled")
