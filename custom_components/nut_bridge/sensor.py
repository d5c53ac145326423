"""UPS sensors: numeric NUT variables, a few text/enum ones, and a status enum sensor."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfApparentPower,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import KEY_STATUS
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear, parse_number
from .power import build_power_sensors

PARALLEL_UPDATES = 0

# Home Assistant refuses longer states.
MAX_STATE_LENGTH = 255


def parse_text(raw: str | None) -> str | None:
    """Free text (alarm, test result): blank reads as unknown."""
    text = (raw or "").strip()
    return text[:MAX_STATE_LENGTH] or None


# battery.charger.status values from nut-names; drivers differ in case ("Resting").
CHARGER_STATUS_OPTIONS = ["charging", "discharging", "floating", "resting", "charged", "disabled", "off"]


def parse_charger_status(raw: str | None) -> str | None:
    value = (raw or "").strip().lower()
    return value if value in CHARGER_STATUS_OPTIONS else None


@dataclass(frozen=True, kw_only=True)
class NutBridgeSensorDescription(SensorEntityDescription):
    """A sensor reading the NUT variable ``key``; numeric unless ``value_fn`` says otherwise."""

    value_fn: Callable[[str | None], StateType] = parse_number


# Enabled by default: the live readings a dashboard shows. Ratings, thresholds, timers,
# per-phase and bypass details are diagnostic and disabled (enable them when needed).
_MEAS = SensorStateClass.MEASUREMENT
_DIAG = EntityCategory.DIAGNOSTIC
_VOLT = UnitOfElectricPotential.VOLT
_AMP = UnitOfElectricCurrent.AMPERE
_HZ = UnitOfFrequency.HERTZ
_WATT = UnitOfPower.WATT
_VA = UnitOfApparentPower.VOLT_AMPERE
_SEC = UnitOfTime.SECONDS


def _unit(device_class: SensorDeviceClass | None, unit: str | None) -> dict[str, Any]:
    return {"device_class": device_class, "native_unit_of_measurement": unit}


_VOLTAGE = _unit(SensorDeviceClass.VOLTAGE, _VOLT)
_CURRENT = _unit(SensorDeviceClass.CURRENT, _AMP)
_FREQUENCY = _unit(SensorDeviceClass.FREQUENCY, _HZ)
_REALPOWER = _unit(SensorDeviceClass.POWER, _WATT)
_APPARENT = _unit(SensorDeviceClass.APPARENT_POWER, _VA)
_TEMPERATURE = _unit(SensorDeviceClass.TEMPERATURE, UnitOfTemperature.CELSIUS)
_DURATION = _unit(SensorDeviceClass.DURATION, _SEC)
_PERCENT = _unit(None, PERCENTAGE)


def _reading(
    key: str, translation_key: str, unit: dict[str, Any], **kwargs: Any
) -> NutBridgeSensorDescription:
    """A live measurement, enabled by default."""
    return NutBridgeSensorDescription(
        key=key, translation_key=translation_key, state_class=_MEAS, **unit, **kwargs
    )


def _detail(key: str, translation_key: str, unit: dict[str, Any], *, measurement: bool = False,
            **kwargs: Any) -> NutBridgeSensorDescription:
    """A rating, threshold or secondary reading: diagnostic, disabled by default."""
    return NutBridgeSensorDescription(
        key=key,
        translation_key=translation_key,
        state_class=_MEAS if measurement else None,
        entity_category=_DIAG,
        entity_registry_enabled_default=False,
        **unit,
        **kwargs,
    )


SENSORS: tuple[NutBridgeSensorDescription, ...] = (
    # battery
    _reading("battery.charge", "battery_charge", _unit(SensorDeviceClass.BATTERY, PERCENTAGE),
             suggested_display_precision=0),
    _reading("battery.runtime", "battery_runtime", _DURATION,
             suggested_unit_of_measurement=UnitOfTime.MINUTES, suggested_display_precision=0),
    _reading("battery.voltage", "battery_voltage", _VOLTAGE, entity_category=_DIAG),
    _reading("battery.temperature", "battery_temperature", _TEMPERATURE, entity_category=_DIAG),
    NutBridgeSensorDescription(
        key="battery.charger.status",
        translation_key="battery_charger_status",
        device_class=SensorDeviceClass.ENUM,
        options=CHARGER_STATUS_OPTIONS,
        value_fn=parse_charger_status,
    ),
    _detail("battery.current", "battery_current", _CURRENT, measurement=True),
    _detail("battery.voltage.nominal", "battery_voltage_nominal", _VOLTAGE),
    _detail("battery.voltage.low", "battery_voltage_low", _VOLTAGE),
    _detail("battery.voltage.high", "battery_voltage_high", _VOLTAGE),
    _detail("battery.charge.low", "battery_charge_low", _PERCENT),
    _detail("battery.charge.warning", "battery_charge_warning", _PERCENT),
    _detail("battery.charge.restart", "battery_charge_restart", _PERCENT),
    _detail("battery.runtime.low", "battery_runtime_low", _DURATION),
    # No Home Assistant unit class for charge; Ah as NUT reports it.
    _detail("battery.capacity", "battery_capacity", _unit(None, "Ah")),
    # ups
    _reading("ups.load", "ups_load", _PERCENT, suggested_display_precision=0),
    _reading("ups.realpower", "ups_realpower", _REALPOWER),
    _reading("ups.power", "ups_power", _APPARENT),
    _reading("ups.temperature", "ups_temperature", _TEMPERATURE, entity_category=_DIAG),
    NutBridgeSensorDescription(key="ups.alarm", translation_key="ups_alarm", value_fn=parse_text),
    NutBridgeSensorDescription(
        key="ups.test.result",
        translation_key="ups_test_result",
        entity_category=_DIAG,
        value_fn=parse_text,
    ),
    _detail("ups.efficiency", "ups_efficiency", _PERCENT, measurement=True),
    _detail("ups.realpower.nominal", "ups_realpower_nominal", _REALPOWER),
    _detail("ups.power.nominal", "ups_power_nominal", _APPARENT),
    _detail("ups.load.high", "ups_load_high", _PERCENT),
    _detail("ups.delay.shutdown", "ups_delay_shutdown", _DURATION),
    _detail("ups.delay.start", "ups_delay_start", _DURATION),
    _detail("ups.delay.reboot", "ups_delay_reboot", _DURATION),
    _detail("ups.timer.shutdown", "ups_timer_shutdown", _DURATION),
    _detail("ups.timer.start", "ups_timer_start", _DURATION),
    _detail("ups.timer.reboot", "ups_timer_reboot", _DURATION),
    _detail("ups.test.interval", "ups_test_interval", _DURATION),
    # input
    _reading("input.voltage", "input_voltage", _VOLTAGE),
    _reading("input.frequency", "input_frequency", _FREQUENCY),
    _reading("input.current", "input_current", _CURRENT),
    _reading("input.realpower", "input_realpower", _REALPOWER),
    _reading("input.power", "input_power", _APPARENT),
    _detail("input.voltage.nominal", "input_voltage_nominal", _VOLTAGE),
    _detail("input.voltage.minimum", "input_voltage_minimum", _VOLTAGE),
    _detail("input.voltage.maximum", "input_voltage_maximum", _VOLTAGE),
    _detail("input.frequency.nominal", "input_frequency_nominal", _FREQUENCY),
    _detail("input.current.nominal", "input_current_nominal", _CURRENT),
    _detail("input.transfer.low", "input_transfer_low", _VOLTAGE),
    _detail("input.transfer.high", "input_transfer_high", _VOLTAGE),
    NutBridgeSensorDescription(
        key="input.transfer.reason",
        translation_key="input_transfer_reason",
        entity_category=_DIAG,
        entity_registry_enabled_default=False,
        value_fn=parse_text,
    ),
    _detail("input.bypass.voltage", "input_bypass_voltage", _VOLTAGE, measurement=True),
    _detail("input.bypass.frequency", "input_bypass_frequency", _FREQUENCY, measurement=True),
    _detail("input.bypass.current", "input_bypass_current", _CURRENT, measurement=True),
    _detail("input.bypass.realpower", "input_bypass_realpower", _REALPOWER, measurement=True),
    # output
    _reading("output.voltage", "output_voltage", _VOLTAGE),
    _reading("output.frequency", "output_frequency", _FREQUENCY),
    _reading("output.current", "output_current", _CURRENT),
    _reading("output.realpower", "output_realpower", _REALPOWER),
    _reading("output.power", "output_power", _APPARENT),
    _detail("output.powerfactor", "output_powerfactor", _unit(SensorDeviceClass.POWER_FACTOR, None),
            measurement=True),
    _detail("output.voltage.nominal", "output_voltage_nominal", _VOLTAGE),
    _detail("output.frequency.nominal", "output_frequency_nominal", _FREQUENCY),
    _detail("output.current.nominal", "output_current_nominal", _CURRENT),
    _detail("output.realpower.nominal", "output_realpower_nominal", _REALPOWER),
    _detail("output.power.nominal", "output_power_nominal", _APPARENT),
    # environment (PDUs, network cards with a probe)
    _reading("ambient.temperature", "ambient_temperature", _TEMPERATURE),
    _reading("ambient.humidity", "ambient_humidity", _unit(SensorDeviceClass.HUMIDITY, PERCENTAGE)),
    # the whole outlet section of a PDU (outlet.N.* are added per outlet, below)
    _reading("outlet.voltage", "outlet_total_voltage", _VOLTAGE),
    _reading("outlet.current", "outlet_total_current", _CURRENT),
    _reading("outlet.realpower", "outlet_total_realpower", _REALPOWER),
    _reading("outlet.power", "outlet_total_power", _APPARENT),
)

# Three-phase devices: DOMAIN.CONTEXT.SPEC (nut-names), phase in the entity name.
_PHASE_SPECS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    # domain, per-phase name suffix, translation key, unit
    ("input", "{n}-N.voltage", "input_phase_voltage", _VOLTAGE),
    ("input", "{n}.current", "input_phase_current", _CURRENT),
    ("input", "{n}.frequency", "input_phase_frequency", _FREQUENCY),
    ("input", "{n}.realpower", "input_phase_realpower", _REALPOWER),
    ("output", "{n}-N.voltage", "output_phase_voltage", _VOLTAGE),
    ("output", "{n}.current", "output_phase_current", _CURRENT),
    ("output", "{n}.realpower", "output_phase_realpower", _REALPOWER),
    ("output", "{n}.power", "output_phase_power", _APPARENT),
    ("output", "{n}.power.percent", "output_phase_load", _PERCENT),
    ("input.bypass", "{n}-N.voltage", "input_bypass_phase_voltage", _VOLTAGE),
    ("input.bypass", "{n}.current", "input_bypass_phase_current", _CURRENT),
    ("input.bypass", "{n}.realpower", "input_bypass_phase_realpower", _REALPOWER),
)
_LINE_PAIRS = ("L1-L2", "L2-L3", "L3-L1")


def _phase_sensors() -> tuple[NutBridgeSensorDescription, ...]:
    out: list[NutBridgeSensorDescription] = []
    for domain, spec, translation_key, unit in _PHASE_SPECS:
        for phase in ("L1", "L2", "L3"):
            label = f"{phase}-N" if "-N" in spec else phase
            out.append(_detail(f"{domain}.{spec.format(n=phase)}", translation_key, unit, measurement=True,
                               translation_placeholders={"phase": label}))
        if spec == "{n}-N.voltage" and domain != "input.bypass":
            # Line-to-line voltages share the per-phase name ("Input L1-L2 voltage").
            out.extend(
                _detail(f"{domain}.{pair}.voltage", translation_key, unit, measurement=True,
                        translation_placeholders={"phase": pair})
                for pair in _LINE_PAIRS
            )
    return tuple(out)


PHASE_SENSORS = _phase_sensors()

# Per-outlet readings of PDUs: outlet.N.<spec>, N >= 1 (outlet.0 is the whole device).
_OUTLET_VAR = re.compile(r"^outlet\.([1-9][0-9]*)\.(voltage|current|realpower|power)$")
_OUTLET_UNITS: dict[str, dict[str, Any]] = {
    "voltage": _VOLTAGE,
    "current": _CURRENT,
    "realpower": _REALPOWER,
    "power": _APPARENT,
}


def outlet_sensor(var: str) -> NutBridgeSensorDescription | None:
    """The description of a per-outlet reading, or None for other variables."""
    if not (match := _OUTLET_VAR.match(var)):
        return None
    number, spec = match.groups()
    return _reading(var, f"outlet_{spec}", _OUTLET_UNITS[spec], translation_placeholders={"outlet": number})


# Status enum: the first matching flag wins; unknown tokens (and WAIT) are ignored.
# OFF outranks OL: "OL OFF" is a UPS on mains whose output is switched off.
STATUS_PRIORITY: tuple[tuple[str, str], ...] = (
    ("FSD", "forced_shutdown"),
    ("LB", "low_battery"),
    ("OB", "on_battery"),
    ("OFF", "off"),
    ("BYPASS", "bypass"),
    ("CAL", "calibrating"),
    ("OL", "online"),
)
STATUS_DESCRIPTION = SensorEntityDescription(
    key=KEY_STATUS,
    translation_key="ups_status",
    device_class=SensorDeviceClass.ENUM,
    options=[option for _, option in STATUS_PRIORITY],
)


def status_option(tokens: frozenset[str]) -> str | None:
    """The enum option for a set of ups.status tokens; None when no known flag is set."""
    for flag, option in STATUS_PRIORITY:
        if flag in tokens:
            return option
    return None


def ups_sensor_descriptions(variables: Iterable[str]) -> list[NutBridgeSensorDescription]:
    """The descriptions of the sensors a UPS reporting these variables gets."""
    present = set(variables)
    found = [d for d in (*SENSORS, *PHASE_SENSORS) if d.key in present]
    outlets = [d for var in present if (d := outlet_sensor(var)) is not None]
    outlets.sort(key=lambda d: (int(d.key.split(".")[1]), d.key))
    return found + outlets


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NutBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add, per UPS, the sensors whose variables the UPS reports."""

    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        entities: list[NutBridgeEntity] = [
            NutBridgeSensor(coordinator, state.name, d) for d in ups_sensor_descriptions(state.variables)
        ]
        if KEY_STATUS in state.variables:
            entities.append(NutBridgeStatusSensor(coordinator, state.name, STATUS_DESCRIPTION))
        entities.extend(build_power_sensors(coordinator, state))
        return entities

    add_entities_as_ups_appear(entry, async_add_entities, build)


class NutBridgeSensor(NutBridgeEntity, SensorEntity):
    """A NUT variable, converted by its description's ``value_fn``."""

    entity_description: NutBridgeSensorDescription

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.raw_value)

    def _inputs(self) -> object:
        return (self.raw_value,)


class NutBridgeStatusSensor(NutBridgeEntity, SensorEntity):
    """The main UPS state derived from ups.status."""

    @property
    def native_value(self) -> str | None:
        state = self.ups_state
        return status_option(state.status_tokens) if state else None

    @property
    def extra_state_attributes(self) -> dict[str, str]:
        return {"raw": self.raw_value or ""} if self.ups_state else {}

    def _inputs(self) -> object:
        state = self.ups_state
        return (self.raw_value, state.status_tokens if state else None)
