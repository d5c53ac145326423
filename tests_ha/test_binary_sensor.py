"""Binary sensor platform against a real bridge: one sensor per ups.status flag."""

from __future__ import annotations

from homeassistant.const import STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant

from .conftest import (
    DUMMY_DEV,
    Bridge,
    assert_registered,
    attributes_of,
    refresh_until_state,
    setup_entry,
    state_of,
)


async def test_flags_of_the_simulated_ups(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    # On mains: OL.
    assert state_of(hass, "binary_sensor.sim_online") == "on"
    assert attributes_of(hass, "binary_sensor.sim_online")["device_class"] == "power"
    assert_registered(hass, bridge, "binary_sensor.sim_online", ups="sim", key="status_ol")
    assert state_of(hass, "binary_sensor.sim_on_battery") == "off"
    assert "device_class" not in attributes_of(hass, "binary_sensor.sim_on_battery")
    assert_registered(hass, bridge, "binary_sensor.sim_on_battery", ups="sim", key="status_ob")
    assert state_of(hass, "binary_sensor.sim_low_battery") == "off"
    assert_registered(hass, bridge, "binary_sensor.sim_low_battery", ups="sim", key="status_lb")
    # Flags that refine others are disabled by default; voltage regulation is diagnostic.
    assert_registered(
        hass, bridge, "binary_sensor.sim_discharging", ups="sim", key="status_dischrg", enabled=False
    )
    assert_registered(
        hass, bridge, "binary_sensor.sim_trimming_voltage", ups="sim", key="status_trim",
        category=EntityCategory.DIAGNOSTIC, enabled=False,
    )


async def test_flags_follow_the_status(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    assert state_of(hass, "binary_sensor.dummy_replace_battery") == "off"

    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OL CHRG RB"))
    await refresh_until_state(hass, entry, "binary_sensor.dummy_replace_battery", "on")
    assert attributes_of(hass, "binary_sensor.dummy_replace_battery")["device_class"] == "problem"
    assert_registered(hass, bridge, "binary_sensor.dummy_replace_battery", ups="dummy", key="status_rb")
    assert state_of(hass, "binary_sensor.dummy_charging") == "on"
    assert attributes_of(hass, "binary_sensor.dummy_charging")["device_class"] == "battery_charging"
    assert_registered(hass, bridge, "binary_sensor.dummy_charging", ups="dummy", key="status_chrg")
    assert state_of(hass, "binary_sensor.dummy_online") == "on"
    assert state_of(hass, "binary_sensor.dummy_on_battery") == "off"

    # WAIT (or a blank status) says nothing about any flag.
    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: WAIT"))
    await refresh_until_state(hass, entry, "binary_sensor.dummy_online", STATE_UNKNOWN)
    assert state_of(hass, "binary_sensor.dummy_replace_battery") == STATE_UNKNOWN
    assert state_of(hass, "sensor.dummy_battery_charge") == "87.0"  # the UPS itself is available
