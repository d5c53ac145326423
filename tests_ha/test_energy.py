"""Derived power and energy sensors: the integrator alone, then against a real bridge.

The ``sim`` UPS reports ``ups.realpower`` (its load in W, 300 by default, changed
with SET VAR experimental.sim.load); the ``dummy`` UPS here reports only ``ups.load``
and ``ups.realpower.nominal``, so it gets the estimated power sensor. Time only moves
with ``advance``, so every expected energy is an exact integral.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import STATE_UNAVAILABLE, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    mock_restore_cache_with_extra_data,
)

from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from custom_components.nut_bridge.power import (
    MAX_GAP,
    SAMPLE_INTERVAL,
    EnergyIntegrator,
    estimated_power,
    power_watts,
    restored_total,
)

from .conftest import (
    T0,
    Bridge,
    advance,
    refresh_until,
    refresh_until_state,
    running_bridge,
    set_var,
    setup_entry,
)

# Entity ids follow the translated names, so tests look entities up by unique id. The
# energy sensors' ids are needed before setup (restore cache); "Energy" is also their
# device-class name, so these ids do not depend on the translations.
SIM_ENERGY = "sensor.sim_energy"
DUMMY_ENERGY = "sensor.dummy_energy"

DUMMY_NOMINAL_W = 500.0
DUMMY_DEV = """\
ups.status: OL
ups.mfr: Dummy Corp
ups.model: File UPS
ups.load: {load}
ups.realpower.nominal: 500
"""



def kwh(watts: float, seconds: float) -> float:
    return watts * seconds / 3_600_000


# -- the integrator and the power rule, alone ------------------------------------------


def test_integrator_trapezoid() -> None:
    energy = EnergyIntegrator()
    assert energy.add(T0, 300.0) == 0.0  # first sample: nothing to integrate yet
    assert energy.add(T0 + timedelta(seconds=60), 300.0) == pytest.approx(kwh(300, 60))
    # A ramp from 300 W to 600 W over 120 s counts its mean, 450 W.
    assert energy.add(T0 + timedelta(seconds=180), 600.0) == pytest.approx(kwh(450, 120))
    assert energy.total_kwh == pytest.approx(kwh(300, 60) + kwh(450, 120))


def test_integrator_gaps_and_bad_samples_end_a_segment() -> None:
    energy = EnergyIntegrator(total_kwh=2.0)
    energy.add(T0, 100.0)
    # Unavailable in between: the time up to the next good sample is not counted.
    assert energy.add(T0 + timedelta(seconds=30), None) == 0.0
    assert energy.add(T0 + timedelta(seconds=60), 100.0) == 0.0
    assert energy.add(T0 + timedelta(seconds=120), 100.0) == pytest.approx(kwh(100, 60))
    total = energy.total_kwh
    for bad in (float("nan"), float("inf"), -5.0):
        assert energy.add(T0 + timedelta(seconds=180), bad) == 0.0
        assert energy.add(T0 + timedelta(seconds=240), 100.0) == 0.0
    # Longer than MAX_GAP without a sample: restart from the new one.
    late = T0 + timedelta(seconds=240) + MAX_GAP + timedelta(seconds=1)
    assert energy.add(late, 100.0) == 0.0
    # Exactly MAX_GAP is still integrated.
    assert energy.add(late + MAX_GAP, 100.0) == pytest.approx(kwh(100, MAX_GAP.total_seconds()))
    # The clock going back restarts too, and never subtracts.
    assert energy.add(late, 100.0) == 0.0
    assert energy.add(late, 100.0) == 0.0  # same instant: zero width
    assert energy.total_kwh == pytest.approx(total + kwh(100, MAX_GAP.total_seconds()))
    assert energy.total_kwh >= 2.0


def test_power_rule() -> None:
    assert estimated_power({"ups.load": "12", "ups.realpower.nominal": "500"}) == 60.0
    assert estimated_power({"ups.load": "12"}) is None
    assert estimated_power({"ups.load": "12", "ups.realpower.nominal": "0"}) is None
    assert estimated_power({"ups.load": "-1", "ups.realpower.nominal": "500"}) is None
    assert estimated_power({"ups.load": "n/a", "ups.realpower.nominal": "500"}) is None
    assert estimated_power({"ups.load": "nan", "ups.realpower.nominal": "500"}) is None
    # VA only: no power factor is invented.
    assert power_watts({"ups.load": "40", "ups.power.nominal": "1500", "ups.power": "600"}) is None
    both = {"ups.load": "12", "ups.realpower.nominal": "500"}
    assert power_watts({**both, "ups.realpower": "75"}) == 75.0
    assert power_watts({**both, "output.realpower": "80"}) == 80.0
    assert power_watts({**both, "ups.realpower": "75", "output.realpower": "80"}) == 75.0
    # A measured value that is unreadable is not replaced by the estimate.
    assert power_watts({**both, "ups.realpower": "?"}) is None
    assert power_watts(both) == 60.0


def test_restored_total() -> None:
    assert restored_total(1.5, "kWh") == 1.5
    assert restored_total(2, "kWh") == 2.0
    assert restored_total(Decimal("0.25"), "kWh") == 0.25
    assert restored_total(1500.0, "Wh") == 0.0
    assert restored_total("1.5", "kWh") == 0.0
    assert restored_total(True, "kWh") == 0.0
    assert restored_total(None, "kWh") == 0.0
    assert restored_total(-1.0, "kWh") == 0.0
    assert restored_total(math.nan, "kWh") == 0.0


# -- against a real bridge -------------------------------------------------------------


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like conftest's, but ``dummy`` has ups.realpower.nominal (and no ups.realpower)."""
    with running_bridge(tmp_path, dummy_dev=DUMMY_DEV.format(load=12)) as b:
        yield b


async def _wait_var(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, var: str, want: str) -> None:
    """Until the coordinator's data (not only the server) has ``var`` at ``want``."""
    coordinator = entry.runtime_data.coordinator
    await refresh_until(
        hass, entry, lambda: coordinator.data[ups].variables.get(var) == want, f"{ups} {var} == {want}"
    )


def _entity(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, key: str) -> str | None:
    """The entity id of one of this module's sensors (key: estimated_power or energy)."""
    return er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.unique_id}_{ups}_{key}")


def _state(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, key: str) -> State:
    entity_id = _entity(hass, entry, ups, key)
    assert entity_id is not None, f"{ups} has no {key} sensor"
    state = hass.states.get(entity_id)
    assert state is not None
    return state


def _energy(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> float:
    return float(_state(hass, entry, ups, "energy").state)


def _assert_energy(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, kwh_total: float) -> None:
    assert _energy(hass, entry, ups) == pytest.approx(kwh_total, abs=1e-6)


async def test_estimated_power_is_load_times_nominal(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)

    power = _state(hass, entry, "dummy", "estimated_power")
    assert float(power.state) == 12 * DUMMY_NOMINAL_W / 100
    assert power.attributes["unit_of_measurement"] == UnitOfPower.WATT
    assert power.attributes["device_class"] == SensorDeviceClass.POWER
    assert power.attributes["state_class"] == SensorStateClass.MEASUREMENT
    # sim measures its output (ups.realpower): no estimate next to it, but an energy sensor.
    assert _entity(hass, entry, "sim", "estimated_power") is None
    energy = _state(hass, entry, "sim", "energy")
    assert energy.attributes["unit_of_measurement"] == UnitOfEnergy.KILO_WATT_HOUR
    assert energy.attributes["device_class"] == SensorDeviceClass.ENERGY
    assert energy.attributes["state_class"] == SensorStateClass.TOTAL_INCREASING
    assert _entity(hass, entry, "dummy", "energy") is not None

    bridge.dummy_file.write_text(DUMMY_DEV.format(load=50))
    await refresh_until_state(hass, entry, power.entity_id, str(50 * DUMMY_NOMINAL_W / 100))
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_va_only_ups_gets_no_power_or_energy(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> None:
    va_only = "ups.status: OL\nups.load: 40\nups.power.nominal: 1500\nups.power: 600\n"
    with running_bridge(tmp_path, sim=False, dummy_dev=va_only) as bridge:
        entry = await setup_entry(hass, bridge)
        assert entry.runtime_data.coordinator.data["dummy"].variables["ups.load"] == "40"
        assert _entity(hass, entry, "dummy", "estimated_power") is None
        assert _entity(hass, entry, "dummy", "energy") is None
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_integrates_real_power(
    hass: HomeAssistant, bridge: Bridge, frozen_time: FrozenDateTimeFactory
) -> None:
    entry = await setup_entry(hass, bridge)
    assert _energy(hass, entry, "sim") == 0.0

    # No change in the data for a while: the periodic sample still counts the time.
    await advance(hass, frozen_time, SAMPLE_INTERVAL.total_seconds())
    expected = kwh(300, SAMPLE_INTERVAL.total_seconds())
    _assert_energy(hass, entry, "sim", expected)

    # The new load arrives at a frozen instant: the step adds nothing by itself.
    await set_var(bridge, "experimental.sim.load", "600")
    await _wait_var(hass, entry, "sim", "ups.realpower", "600")
    _assert_energy(hass, entry, "sim", expected)
    await advance(hass, frozen_time, 120)
    expected += kwh(600, 120)
    _assert_energy(hass, entry, "sim", expected)

    await set_var(bridge, "experimental.sim.load", "150")
    await _wait_var(hass, entry, "sim", "ups.realpower", "150")
    # Samples happen on changes and at least every SAMPLE_INTERVAL: whatever happened
    # in between (push batches arrive at frozen instants), the integral is exact.
    await advance(hass, frozen_time, 30)
    await advance(hass, frozen_time, 30)
    expected += kwh(150, 60)
    _assert_energy(hass, entry, "sim", expected)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_does_not_jump_after_unavailability(
    hass: HomeAssistant, bridge: Bridge, frozen_time: FrozenDateTimeFactory
) -> None:
    entry = await setup_entry(hass, bridge)
    watts = 12 * DUMMY_NOMINAL_W / 100
    await advance(hass, frozen_time, 60)
    expected = kwh(watts, 60)
    _assert_energy(hass, entry, "dummy", expected)

    bridge.dummy_file.unlink()
    await refresh_until_state(hass, entry, DUMMY_ENERGY, STATE_UNAVAILABLE)
    # Shorter than MAX_GAP, but the UPS had no data: none of it is counted.
    await advance(hass, frozen_time, 240)
    await advance(hass, frozen_time, 240)
    bridge.dummy_file.write_text(DUMMY_DEV.format(load=12))
    await refresh_until_state(hass, entry, DUMMY_ENERGY, str(round(expected, 6)))

    await advance(hass, frozen_time, 60)
    expected += kwh(watts, 60)
    _assert_energy(hass, entry, "dummy", expected)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_energy_restores_after_restart_and_reload(
    hass: HomeAssistant, bridge: Bridge, frozen_time: FrozenDateTimeFactory
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(SIM_ENERGY, "1.5"),
                {"native_value": 1.5, "native_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR},
            ),
            # A total in another unit is not trusted: that sensor starts from 0.
            (
                State(DUMMY_ENERGY, "1500"),
                {"native_value": 1500.0, "native_unit_of_measurement": "Wh"},
            ),
        ],
    )
    entry = await setup_entry(hass, bridge)
    assert _energy(hass, entry, "sim") == 1.5
    assert _energy(hass, entry, "dummy") == 0.0

    await advance(hass, frozen_time, 60)
    expected = 1.5 + kwh(300, 60)
    _assert_energy(hass, entry, "sim", expected)

    # A reload (as after new credentials) keeps the total; the time it took is not counted.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    _assert_energy(hass, entry, "sim", expected)
    await advance(hass, frozen_time, 60)
    expected += kwh(300, 60)
    _assert_energy(hass, entry, "sim", expected)
    assert await hass.config_entries.async_unload(entry.entry_id)
