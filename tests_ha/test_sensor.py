"""Sensor platform against a real bridge: readings, text and enum sensors, the status sensor.

The UPS is dummy-ups reading a data file with a known value for each kind of sensor,
so every state asserted here is what the bridge serves from that file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from custom_components.nut_bridge.sensor import CHARGER_STATUS_OPTIONS, status_option

from .conftest import (
    DUMMY_DEV,
    Bridge,
    assert_registered,
    attributes_of,
    refresh_until_state,
    running_bridge,
    setup_entry,
    state_of,
)

SENSOR_DEV = DUMMY_DEV + """\
battery.runtime: 1500
battery.voltage: 27.3
battery.voltage.nominal: 24
battery.charger.status: Resting
ups.test.result: Done and passed
outlet.1.realpower: 40
"""


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """dummy-ups only, reading SENSOR_DEV."""
    with running_bridge(tmp_path, sim=False, dummy_dev=SENSOR_DEV) as b:
        yield b


async def test_live_readings(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "sensor.dummy_battery_charge") == "87.0"
    attributes = attributes_of(hass, "sensor.dummy_battery_charge")
    assert (attributes["unit_of_measurement"], attributes["device_class"], attributes["state_class"]) == (
        "%",
        "battery",
        "measurement",
    )
    assert_registered(hass, bridge, "sensor.dummy_battery_charge", ups="dummy", key="battery.charge")

    # NUT reports seconds; Home Assistant shows the suggested unit, minutes.
    assert state_of(hass, "sensor.dummy_battery_runtime") == "25.0"
    assert attributes_of(hass, "sensor.dummy_battery_runtime")["unit_of_measurement"] == "min"
    assert_registered(hass, bridge, "sensor.dummy_battery_runtime", ups="dummy", key="battery.runtime")

    assert state_of(hass, "sensor.dummy_load") == "12.0"
    assert_registered(hass, bridge, "sensor.dummy_load", ups="dummy", key="ups.load")

    # A per-outlet reading of a PDU: outlet.N.<spec>, the outlet number in its name.
    assert state_of(hass, "sensor.dummy_outlet_1_real_power") == "40.0"
    assert attributes_of(hass, "sensor.dummy_outlet_1_real_power")["unit_of_measurement"] == "W"
    assert_registered(hass, bridge, "sensor.dummy_outlet_1_real_power", ups="dummy", key="outlet.1.realpower")


async def test_diagnostic_and_disabled_sensors(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "sensor.dummy_battery_voltage") == "27.3"
    assert_registered(
        hass, bridge, "sensor.dummy_battery_voltage", ups="dummy", key="battery.voltage",
        category=EntityCategory.DIAGNOSTIC,
    )
    # A rating: diagnostic and disabled by default.
    assert_registered(
        hass, bridge, "sensor.dummy_nominal_battery_voltage", ups="dummy", key="battery.voltage.nominal",
        category=EntityCategory.DIAGNOSTIC, enabled=False,
    )


async def test_text_and_enum_sensors(hass: HomeAssistant, bridge: Bridge) -> None:
    await setup_entry(hass, bridge)
    assert state_of(hass, "sensor.dummy_self_test_result") == "Done and passed"
    assert_registered(
        hass, bridge, "sensor.dummy_self_test_result", ups="dummy", key="ups.test.result",
        category=EntityCategory.DIAGNOSTIC,
    )
    # Drivers differ in case ("Resting"): the enum option is lower case.
    assert state_of(hass, "sensor.dummy_charger_status") == "resting"
    attributes = attributes_of(hass, "sensor.dummy_charger_status")
    assert attributes["device_class"] == "enum" and attributes["options"] == CHARGER_STATUS_OPTIONS
    assert_registered(hass, bridge, "sensor.dummy_charger_status", ups="dummy", key="battery.charger.status")


async def test_status_sensor(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    assert state_of(hass, "sensor.dummy_status") == "online"
    assert attributes_of(hass, "sensor.dummy_status")["raw"] == "OL"
    assert_registered(hass, bridge, "sensor.dummy_status", ups="dummy", key="ups.status")

    bridge.dummy_file.write_text(SENSOR_DEV.replace("ups.status: OL", "ups.status: OB LB"))
    await refresh_until_state(hass, entry, "sensor.dummy_status", "low_battery")
    assert attributes_of(hass, "sensor.dummy_status")["raw"] == "OB LB"


def test_status_tolerates_unknown_tokens() -> None:
    assert status_option(frozenset({"OL", "CHRG", "WHATEVER"})) == "online"
    assert status_option(frozenset({"OB", "LB", "OQ"})) == "low_battery"
    assert status_option(frozenset({"OQ"})) is None
