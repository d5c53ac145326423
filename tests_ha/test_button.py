"""Button platform against a real bridge: one button per instant command the UPS lists."""

from __future__ import annotations

from homeassistant.const import STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from .conftest import (
    Bridge,
    assert_registered,
    attributes_of,
    setup_entry,
    state_of,
    ups_device,
    wait_var,
)


async def test_command_buttons(hass: HomeAssistant, outlet_bridge: Bridge) -> None:
    bridge = outlet_bridge
    await setup_entry(hass, bridge)
    assert state_of(hass, "button.sim_quick_battery_test") == STATE_UNKNOWN  # never pressed
    assert_registered(
        hass, bridge, "button.sim_quick_battery_test", ups="sim", key="test.battery.start.quick",
        category=EntityCategory.CONFIG,
    )
    # A reboot cuts the load's power: disabled by default.
    assert_registered(
        hass, bridge, "button.sim_reboot", ups="sim", key="shutdown.reboot",
        category=EntityCategory.CONFIG, enabled=False,
    )
    # outlet.N.load.cycle of an outlet with outlet.N.status.
    assert attributes_of(hass, "button.sim_cycle_outlet_1")["device_class"] == "restart"
    assert_registered(hass, bridge, "button.sim_cycle_outlet_1", ups="sim", key="outlet.1.load.cycle")
    assert state_of(hass, "button.sim_cycle_outlet_2") == STATE_UNKNOWN


async def test_press_runs_the_command(hass: HomeAssistant, outlet_bridge: Bridge) -> None:
    bridge = outlet_bridge
    entry = await setup_entry(hass, bridge)
    assert_registered(
        hass, bridge, "button.sim_mute_beeper", ups="sim", key="beeper.mute", category=EntityCategory.CONFIG
    )
    await hass.services.async_call("button", "press", {"entity_id": "button.sim_mute_beeper"}, blocking=True)
    await wait_var(bridge, "ups.beeper.status", "muted")
    assert state_of(hass, "button.sim_mute_beeper") != STATE_UNKNOWN  # the time of the press

    # dummy-ups lists only driver.* and shutdown commands: no button of ours.
    on_dummy = er.async_entries_for_device(er.async_get(hass), ups_device(hass, entry, "dummy").id)
    assert [e.entity_id for e in on_dummy if e.domain == "button"] == []
