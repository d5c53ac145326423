"""Derived power and energy sensors, so that a UPS can be an Energy dashboard device.

Which watts the UPS's load draws (``power_watts``):

1. ``ups.realpower`` (W) when the UPS reports it, else ``output.realpower``:
   measured, and already shown by sensor.py; here they only feed the energy sensor.
2. Otherwise ``ups.load`` (%) x ``ups.realpower.nominal`` (W) / 100, shown as an
   "Estimated power" sensor. ``ups.load`` is a whole percentage of the UPS's
   rating, so the estimate is only as fine as 1 % of the nominal power.
3. Otherwise nothing: no power and no energy sensor. A UPS that only knows
   ``ups.power``/``ups.power.nominal`` (VA) would need the load's power factor to
   give watts, which NUT does not report and which ranges from about 0.6 (PSUs
   without PFC) to nearly 1 (active PFC). A guessed factor would put numbers that
   may be a third off into long-term energy statistics, so none is invented.
   (NUT drivers accept ``override.ups.realpower.nominal`` in ups.conf for such UPS.)

The energy sensor integrates that power over time with the trapezoidal rule
between samples. A sample is taken at every coordinator update and, because the
coordinator only notifies listeners when data changed, every SAMPLE_INTERVAL as
well. Time spent unavailable, or a gap longer than MAX_GAP between samples (Home
Assistant stopped, clock jumped), is not integrated: the next sample starts a new
segment, so the total never jumps. The energy is the UPS's output (what its load
used), not what it takes from the mains (its own losses and charging).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfEnergy, UnitOfPower
from homeassistant.core import callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .coordinator import NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, parse_number

KEY_REALPOWER: Final = "ups.realpower"
KEY_OUTPUT_REALPOWER: Final = "output.realpower"
# Measured output power, best first.
MEASURED_POWER_KEYS: Final = (KEY_REALPOWER, KEY_OUTPUT_REALPOWER)
KEY_REALPOWER_NOMINAL: Final = "ups.realpower.nominal"
KEY_LOAD: Final = "ups.load"

# Energy samples at least this often, whether or not the data changed.
SAMPLE_INTERVAL: Final = timedelta(seconds=60)
# A longer gap between two samples is not integrated.
MAX_GAP: Final = timedelta(minutes=10)

ESTIMATED_POWER = SensorEntityDescription(
    key="estimated_power",
    translation_key="estimated_power",
    native_unit_of_measurement=UnitOfPower.WATT,
    device_class=SensorDeviceClass.POWER,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=0,
)
ENERGY = SensorEntityDescription(
    key="energy",
    translation_key="energy",
    native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    device_class=SensorDeviceClass.ENERGY,
    state_class=SensorStateClass.TOTAL_INCREASING,
    suggested_display_precision=3,
)


def estimated_power(variables: Mapping[str, str]) -> float | None:
    """``ups.load`` % of ``ups.realpower.nominal``, in W; None when either is unusable."""
    load = parse_number(variables.get(KEY_LOAD))
    nominal = parse_number(variables.get(KEY_REALPOWER_NOMINAL))
    if load is None or nominal is None or load < 0 or nominal <= 0:
        return None
    return load * nominal / 100.0


def power_watts(variables: Mapping[str, str]) -> float | None:
    """The load's power in W: measured if the UPS reports it, else the estimate."""
    for key in MEASURED_POWER_KEYS:
        if key in variables:
            return parse_number(variables[key])
    return estimated_power(variables)


@dataclass
class EnergyIntegrator:
    """Trapezoidal integral of power samples, in kWh; gaps and bad samples end a segment."""

    total_kwh: float = 0.0
    max_gap: timedelta = MAX_GAP
    _last: tuple[datetime, float] | None = None

    def add(self, when: datetime, watts: float | None) -> float:
        """Add a sample (None: no valid reading); returns the kWh it added."""
        if watts is None or not math.isfinite(watts) or watts < 0:
            self._last = None
            return 0.0
        last, self._last = self._last, (when, watts)
        if last is None:
            return 0.0
        seconds = (when - last[0]).total_seconds()
        if seconds <= 0 or seconds > self.max_gap.total_seconds():
            # Clock went back, or nothing is known about the gap: start afresh.
            return 0.0
        increment = (last[1] + watts) / 2.0 * seconds / 3_600_000.0
        self.total_kwh += increment
        return increment


def restored_total(value: object, unit: str | None) -> float:
    """A restored energy total in kWh; 0 for anything unusable."""
    if unit != UnitOfEnergy.KILO_WATT_HOUR or isinstance(value, bool):
        return 0.0
    if not isinstance(value, (int, float, Decimal)):
        return 0.0
    total = float(value)
    return total if math.isfinite(total) and total >= 0 else 0.0


def build_power_sensors(coordinator: NutBridgeCoordinator, state: UpsState) -> list[NutBridgeEntity]:
    """The derived power/energy sensors of one UPS (see the module docstring for the rule)."""
    variables = state.variables
    measured = any(key in variables for key in MEASURED_POWER_KEYS)
    can_estimate = KEY_LOAD in variables and KEY_REALPOWER_NOMINAL in variables
    entities: list[NutBridgeEntity] = []
    if not measured and can_estimate:
        entities.append(NutBridgeEstimatedPowerSensor(coordinator, state.name, ESTIMATED_POWER))
    if measured or can_estimate:
        entities.append(NutBridgeEnergySensor(coordinator, state.name, ENERGY))
    return entities


class NutBridgeEstimatedPowerSensor(NutBridgeEntity, SensorEntity):
    """Load % x real power rating, for UPS that do not measure their output power."""

    @property
    @override
    def native_value(self) -> float | None:
        state = self.ups_state
        return estimated_power(state.variables) if state else None


class NutBridgeEnergySensor(NutBridgeEntity, RestoreSensor):
    """Energy delivered to the UPS's load (kWh), integrated from its power."""

    def __init__(
        self, coordinator: NutBridgeCoordinator, ups: str, description: SensorEntityDescription
    ) -> None:
        super().__init__(coordinator, ups, description)
        self._integrator = EnergyIntegrator()

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._integrator.total_kwh = restored_total(
                last.native_value, last.native_unit_of_measurement
            )
        self._sample()
        self.async_on_remove(
            async_track_time_interval(self.hass, self._async_periodic_sample, SAMPLE_INTERVAL)
        )

    @property
    @override
    def native_value(self) -> float:
        # Whole mWh: the float's last digits are noise, not energy.
        return round(self._integrator.total_kwh, 6)

    def _sample(self) -> None:
        state = self.ups_state
        watts = power_watts(state.variables) if state is not None and self.available else None
        self._integrator.add(dt_util.utcnow(), watts)

    @override
    @callback
    def _handle_coordinator_update(self) -> None:
        self._sample()
        # Not super(): the energy total moves with time even when the UPS data did not.
        self.async_write_ha_state()

    @callback
    def _async_periodic_sample(self, now: datetime) -> None:
        self._sample()
        self.async_write_ha_state()
