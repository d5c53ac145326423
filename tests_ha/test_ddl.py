"""Every NUT DDL device dump, served by ONE real bridge process, set up in Home Assistant.

One config entry against a bridge serving all 368 dumps of ../shared/data/ddl (dummy-ups,
one UPS per dump). Checked: setup succeeds without any WARNING/ERROR log record, every
UPS is a device, every standard variable the sensor table covers becomes an entity with
the device class and unit NUT's variable definition implies (an expectation written
here, independently of sensor.py), numeric sensors read as numbers (or unknown when the
dump's value is not a number), the status enum and flags follow ups.status whatever
unknown tokens it carries. A corpus-wide summary (which variables occur in how many
dumps) keeps the sensor table honest: a common numeric variable must be covered or be
listed in NOT_SENSORS with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.nut_bridge.binary_sensor import BINARY_SENSORS
from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.sensor import (
    PHASE_SENSORS,
    SENSORS,
    STATUS_DESCRIPTION,
    NutBridgeSensorDescription,
    outlet_sensor,
    parse_number,
    ups_sensor_descriptions,
)
from nutbridge.client import NutClient
from tests.support import realnut

from .conftest import bridge_entry

# Standard NUT variables (docs/nut-names) that must have a sensor description: the
# readings and ratings users ask for, most of them common in the corpus.
STANDARD = {
    "battery.charge", "battery.runtime", "battery.voltage", "battery.temperature", "battery.current",
    "battery.voltage.nominal", "battery.charge.low", "battery.charge.warning", "battery.runtime.low",
    "ups.load", "ups.realpower", "ups.power", "ups.temperature", "ups.realpower.nominal",
    "ups.power.nominal", "ups.efficiency", "input.voltage", "input.frequency", "input.current",
    "input.voltage.nominal", "input.frequency.nominal", "input.bypass.voltage", "input.bypass.frequency",
    "output.voltage", "output.frequency", "output.current", "output.power", "output.realpower",
    "output.voltage.nominal", "output.frequency.nominal", "ambient.temperature", "ambient.humidity",
    "outlet.1.current", "outlet.1.realpower", "input.L1-N.voltage", "output.L1.current",
}

# Numeric-looking variables common in the corpus that deliberately get no sensor.
NOT_SENSORS = {
    "ups.productid": "USB id (hex), device information",
    "input.voltage.fault": "Megatec's voltage at the last mains fault: latched, not a reading",
    "input.phases": "a topology constant; per-phase sensors appear where per-phase data exists",
    "output.phases": "a topology constant",
    "outlet.id": "an index",
    "outlet.N.id": "an index",
    "outlet.N.delay.start": "an outlet setting (number entity where writable)",
    "outlet.N.delay.shutdown": "an outlet setting (number entity where writable)",
    "outlet.N.autoswitch.charge.low": "an outlet setting",
    "battery.packs": "configuration (count of battery packs)",
    "ambient.temperature.high": "an alarm threshold (setting)",
    "input.frequency.low": "a transfer setting",
    "input.frequency.high": "a transfer setting",
    "input.quality": "a vendor-specific code (FF, 00, ...)",
}
COMMON = 20  # a variable in at least this many dumps counts as common
PER_KEY = 12  # disabled sensors enabled up front per variable (plus every non-numeric value)

# What NUT's variable names imply, independently of sensor.py: (pattern, device class, unit).
EXPECTED: tuple[tuple[str, str | None, str | None], ...] = (
    (r"^battery\.charge$", "battery", "%"),
    (r"^battery\.charge\.(low|warning|restart)$", None, "%"),
    (r"(^battery\.runtime(\.low)?|^ups\.(delay|timer)\.[a-z]+|^ups\.test\.interval)$", "duration", "s"),
    (r"humidity$", "humidity", "%"),
    (r"temperature$", "temperature", "°C"),
    (r"(voltage(\.nominal|\.minimum|\.maximum|\.low|\.high)?|^input\.transfer\.(low|high))$", "voltage", "V"),
    (r"current(\.nominal)?$", "current", "A"),
    (r"frequency(\.nominal)?$", "frequency", "Hz"),
    (r"realpower(\.nominal)?$", "power", "W"),
    (r"\.power(\.nominal)?$", "apparent_power", "VA"),
    (r"(^ups\.load(\.high)?|\.power\.percent|^ups\.efficiency)$", None, "%"),
    (r"powerfactor$", "power_factor", None),
    (r"^battery\.capacity$", None, "Ah"),
)

STATUS_FLAGS = {"FSD", "LB", "OB", "OFF", "BYPASS", "CAL", "OL"}
# Loggers whose warnings would reach a user's log.
WATCHED = ("homeassistant", "custom_components", "nutbridge")


def _expected_unit(var: str) -> tuple[str | None, str | None]:
    for pattern, device_class, unit in EXPECTED:
        if re.search(pattern, var):
            return device_class, unit
    raise AssertionError(f"no expectation for {var}: add one to EXPECTED")


def _generic(var: str) -> str:
    """outlet.3.current -> outlet.N.current (for the corpus summary)."""
    return re.sub(r"^(outlet|ambient|input|output)\.\d+\.", r"\1.N.", var)


def _is_number(raw: str) -> bool:
    return parse_number(raw) is not None


@dataclass
class Corpus:
    cfg: realnut.NutConfig
    proc: realnut.BridgeProcess
    names: dict[str, Path]


@pytest.fixture
def corpus(socket_enabled: None, tmp_path: Path) -> Iterator[Corpus]:
    files = realnut.ddl_files()
    assert len(files) >= 368, f"DDL corpus not found at {realnut.DDL_DIR}"
    names = realnut.ddl_ups_names(files)
    cfg = realnut.NutConfig(tmp_path)
    for name, f in names.items():
        cfg.add_ups(name, driver="dummy-ups", port=str(f), desc=f.stem[:60])
    proc = realnut.BridgeProcess.start(cfg)
    try:
        realnut.wait_ready_many(cfg.port, list(names))
        yield Corpus(cfg, proc, names)
    finally:
        proc.stop()


async def _served(port: int, names: list[str]) -> dict[str, dict[str, str]]:
    """LIST VAR of every UPS, read by a plain client (the raw values the dumps give)."""
    async with NutClient("127.0.0.1", port) as client:
        return {name: await client.list_var(name) for name in names}


def _numeric(d: NutBridgeSensorDescription) -> bool:
    return d.value_fn is parse_number


@pytest.mark.timeout(120)
async def test_every_ddl_dump(
    hass: HomeAssistant, corpus: Corpus, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING)
    names = list(corpus.names)
    served = await _served(corpus.cfg.port, names)

    entry = bridge_entry(corpus.cfg, title="ddl")
    entry.add_to_hass(hass)
    # Disabled (diagnostic) sensors report their values only once enabled. Enabling all
    # of them would pass Home Assistant's cap of 10000 enabled entities per config entry,
    # so a sample is enabled up front: every dump whose value is not a number (the
    # "unknown" path) and the first PER_KEY dumps with a number, per variable. Device
    # class and unit are checked on every entity, enabled or not (registry).
    registry = er.async_get(hass)
    enabled_up_front: set[tuple[str, str]] = set()
    sampled = Counter[str]()
    for name in names:
        for d in ups_sensor_descriptions(served[name]):
            if d.entity_registry_enabled_default is not False:
                continue
            if parse_number(served[name][d.key]) is not None and sampled[d.key] >= PER_KEY:
                continue
            sampled[d.key] += 1
            enabled_up_front.add((name, d.key))
            registry.async_get_or_create(
                "sensor", DOMAIN, f"{entry.unique_id}_{name}_{d.key}", config_entry=entry,
                suggested_object_id=f"{name}_{d.key}",
            )

    t0 = time.monotonic()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    setup_s = time.monotonic() - t0
    assert entry.state is ConfigEntryState.LOADED

    # Every UPS is a device, under the server device.
    devices = dr.async_get(hass)
    server = devices.async_get_device_by_identifier((DOMAIN, str(entry.unique_id)), entry.entry_id)
    assert server is not None
    for name in names:
        device = devices.async_get_device_by_identifier((DOMAIN, f"{entry.unique_id}_{name}"), entry.entry_id)
        assert device is not None, name
        assert device.via_device_id == server.id

    def entity(domain: str, name: str, key: str) -> er.RegistryEntry | None:
        """The entity of a UPS's key; the unique id is "<entry>_<ups>_<key>"."""
        entity_id = registry.async_get_entity_id(domain, DOMAIN, f"{entry.unique_id}_{name}_{key}")
        return registry.async_get(entity_id) if entity_id else None

    descriptions = {d.key: d for d in (*SENSORS, *PHASE_SENSORS)}
    checked = Counter[str]()
    for name in names:
        variables = served[name]
        for var, raw in variables.items():
            d = descriptions.get(var) or outlet_sensor(var)
            if d is None:
                continue
            ent = entity("sensor", name, var)
            assert ent is not None, f"{name}: no sensor for {var}"
            if (name, var) not in enabled_up_front:
                # As shipped: diagnostic details disabled, readings enabled.
                assert (ent.disabled_by is not None) == (d.entity_registry_enabled_default is False), (
                    name, var, ent.disabled_by)
            state = hass.states.get(ent.entity_id)
            assert (state is None) == (ent.disabled_by is not None), (name, var, ent.entity_id)
            if not _numeric(d):
                if d.device_class == "enum" and state is not None:
                    assert state.state in [*(d.options or []), "unknown"], (name, var, state.state)
                continue
            # Device class and unit as NUT's definition of the variable implies (registry:
            # known for disabled entities too).
            device_class, unit = _expected_unit(var)
            assert ent.original_device_class == device_class, (name, var, ent.original_device_class)
            scale = 1.0
            if unit == "s" and ent.unit_of_measurement == "min":  # battery.runtime: shown in minutes
                scale = 60.0
            else:
                assert ent.unit_of_measurement == unit, (name, var, ent.unit_of_measurement)
            if state is None:
                continue
            assert state.attributes.get("device_class") == device_class, (name, var, state.attributes)
            assert state.attributes.get("unit_of_measurement") == ent.unit_of_measurement
            # Numbers are numbers: the state is the dump's value, or unknown ("LoadTooLow", "FF").
            number = parse_number(raw)
            if number is None:
                assert state.state == "unknown", (name, var, raw, state.state)
            else:
                assert math.isclose(float(state.state), number / scale, rel_tol=1e-6, abs_tol=0.01), (
                    name, var, raw, state.state)
            checked[var] += 1

        # The status enum and the flags follow ups.status, unknown tokens and all.
        if "ups.status" not in variables:
            assert entity("sensor", name, "ups.status") is None
            continue
        raw_status = variables["ups.status"]
        tokens = set(raw_status.upper().split())
        status_entity = entity("sensor", name, "ups.status")
        assert status_entity is not None
        status = hass.states.get(status_entity.entity_id)
        assert status is not None
        assert status.state in [*(STATUS_DESCRIPTION.options or []), "unknown"], (name, raw_status)
        assert (status.state == "unknown") == (not tokens & STATUS_FLAGS), (name, raw_status, status.state)
        assert status.attributes["raw"] == raw_status
        for b in BINARY_SENSORS:
            ent = entity("binary_sensor", name, b.key)
            assert ent is not None, (name, b.key)
            flag_state = hass.states.get(ent.entity_id)
            if b.entity_registry_enabled_default is False:
                assert ent.disabled_by is not None and flag_state is None
                continue
            assert flag_state is not None
            # A blank ups.status (three dumps) says nothing about any flag.
            want = "unknown" if not tokens else "on" if {b.flag, *b.aliases} & tokens else "off"
            assert flag_state.state == want, (name, b.key, raw_status)

    # Corpus summary: how many dumps report each variable, and which sensors they feed.
    occurs = Counter(_generic(v) for variables in served.values() for v in set(variables))
    numeric = Counter(_generic(v) for variables in served.values() for v, raw in variables.items()
                      if _is_number(raw))
    covered = {_generic(k) for k in descriptions} | {"outlet.N.current", "outlet.N.realpower",
                                                      "outlet.N.power", "outlet.N.voltage"}
    missing = sorted(
        (v for v, n in occurs.items()
         if n >= COMMON and numeric[v] >= n / 2 and v not in covered and v not in NOT_SENSORS
         and not v.startswith(("driver.", "device.", "experimental."))),
        key=lambda v: -occurs[v],
    )
    with capsys.disabled():
        print(f"\nDDL: {len(names)} dumps, one bridge, HA setup {setup_s:.1f} s, "
              f"{len(registry.entities)} registry entities, {sum(checked.values())} sensor values checked")
        print("  covered:  " + ", ".join(f"{v} {occurs[v]}" for v in sorted(covered, key=lambda v: -occurs[v])
                                           if occurs[v]))
        print(f"  numeric, in >= {COMMON} dumps, no sensor: " + ", ".join(
            f"{v} {n} ({NOT_SENSORS.get(v, 'MISSING')})" for v, n in occurs.most_common()
            if n >= COMMON and numeric[v] >= n / 2 and v not in covered
            and not v.startswith(("driver.", "device."))))
    assert not {_generic(k) for k in descriptions} & set(NOT_SENSORS), "NOT_SENSORS lists a covered variable"
    assert not missing, f"common numeric variables without a sensor (or a NOT_SENSORS reason): {missing}"
    described = set(descriptions) | {"outlet.1.current", "outlet.1.realpower"}
    assert not STANDARD - described, STANDARD - described
    # Every standard variable the corpus has was read through an entity at least once.
    present = {v for variables in served.values() for v in variables}
    assert not [v for v in STANDARD & present if not checked[v]]

    # Room left under Home Assistant's cap of enabled entities per config entry.
    enabled = sum(1 for e in er.async_entries_for_config_entry(registry, entry.entry_id) if not e.disabled)
    assert enabled < 10000, enabled

    # Last, so that a noisy platform does not hide the checks above: nothing the user
    # would see in the log (Home Assistant's notice about custom integrations aside).
    noisy = [
        r for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(WATCHED)
        and not (r.name == "homeassistant.loader" and "custom integration" in r.getMessage())
    ]
    assert not noisy, "\n".join(f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in noisy[:20])
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_descriptions_are_translated() -> None:
    """Every sensor and flag has a name in strings.json, with the placeholders it passes."""
    strings = json.loads((Path(__file__).resolve().parents[1] / "custom_components" / "nut_bridge"
                          / "strings.json").read_text())["entity"]
    outlet = [d for v in ("outlet.1.voltage", "outlet.1.current", "outlet.1.realpower", "outlet.1.power")
              if (d := outlet_sensor(v)) is not None]
    assert len(outlet) == 4
    assert outlet_sensor("outlet.0.current") is None and outlet_sensor("outlet.1.id") is None
    for d in (*SENSORS, *PHASE_SENSORS, *outlet, STATUS_DESCRIPTION):
        assert d.translation_key, d.key
        name = strings["sensor"][d.translation_key]["name"]
        assert set(re.findall(r"{(\w+)}", name)) == set(d.translation_placeholders or {}), d.key
        if d.device_class == "enum":
            assert set(strings["sensor"][d.translation_key]["state"]) == set(d.options or []), d.key
    for b in BINARY_SENSORS:
        assert b.translation_key in strings["binary_sensor"], b.key
    keys = [d.key for d in (*SENSORS, *PHASE_SENSORS)]
    assert len(keys) == len(set(keys))


def test_numbers_are_numbers() -> None:
    assert parse_number("230.5") == 230.5
    assert parse_number(" 12 ") == 12.0
    assert parse_number("032.0") == 32.0
    for raw in (None, "", "LoadTooLow", "FF", "nan", "inf", "1_000", "12,5"):
        assert parse_number(raw) is None, raw
