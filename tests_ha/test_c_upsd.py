"""The integration against Debian's C upsd + dummy-ups (NUT 2.8.5 in sid): polling mode.

The C upsd has no push (SUBSCRIBE is an unknown command), so the coordinator must poll,
and the entities must be exactly those the bridge gives for the same .dev files. A
change of the .dev file (mains lost) reaches Home Assistant through the poll timer.
Writes (SET VAR) and commands (INSTCMD with tracking) go through the C upsd as well.

The C daemons are required like every interop test (tests/support/realnut.py):
missing, the tests skip locally and fail under NUTBRIDGE_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.nut_bridge.const import DOMAIN, UPDATE_INTERVAL, UPDATE_INTERVAL_ON_BATTERY
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from tests.support import realnut
from tests.support.realnut import BridgeProcess, NutConfig

from .conftest import refresh_until_state, setup_entry, state_of, wait_var

MAIN_DEV = """\
ups.status: OL CHRG
ups.mfr: Interop Corp
ups.model: C upsd UPS
ups.serial: CUPSD-0001
ups.firmware: 1.2.3
ups.id: rack-1
ups.load: 23
ups.realpower: 90
ups.power: 120
ups.power.nominal: 600
ups.temperature: 31.5
ups.delay.shutdown: 20
ups.test.result: Done and passed
battery.charge: 95
battery.charge.low: 20
battery.runtime: 1800
battery.voltage: 13.6
battery.voltage.nominal: 12
input.voltage: 230.5
input.voltage.nominal: 230
input.frequency: 50.0
output.voltage: 230.0
output.frequency: 50.0
output.current: 0.5
"""
SECOND_DEV = """\
ups.status: OL
ups.mfr: Interop Corp
ups.model: Small UPS
battery.charge: 100
ups.load: 5
input.voltage: 231
"""
ON_BATTERY = MAIN_DEV.replace("ups.status: OL CHRG", "ups.status: OB DISCHRG").replace(
    "battery.charge: 95", "battery.charge: 80"
)
# Loggers whose warnings would reach a user's log.
WATCHED = ("homeassistant", "custom_components", "nutbridge")


def _config(root: Path, main_dev: Path, second_dev: Path) -> NutConfig:
    cfg = NutConfig(root)
    cfg.add_ups("main", driver="dummy-ups", port=str(main_dev), pollinterval="1", desc="Main UPS")
    cfg.add_ups("second", driver="dummy-ups", port=str(second_dev), pollinterval="1", desc="Second UPS")
    return cfg


def _dev_files(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    main, second = root / "main.dev", root / "second.dev"
    main.write_text(MAIN_DEV)
    second.write_text(SECOND_DEV)
    return main, second


@pytest.fixture
def c_upsd(socket_enabled: None, tmp_path: Path) -> Iterator[NutConfig]:
    """Debian's C upsd and two dummy-ups drivers; the .dev files are in cfg.root."""
    realnut.require_daemon("upsd")
    realnut.require_daemon("dummy-ups")
    cfg = _config(tmp_path / "c", *_dev_files(tmp_path / "c"))
    with realnut.c_upsd(cfg):
        yield cfg


@pytest.fixture
def bridge_same(socket_enabled: None, tmp_path: Path) -> Iterator[NutConfig]:
    """The bridge serving the same two .dev files through its dummy-ups."""
    cfg = _config(tmp_path / "py", *_dev_files(tmp_path / "py"))
    proc = BridgeProcess.start(cfg)
    try:
        realnut.wait_ready_ups(cfg.port, list(cfg.ups))
        yield cfg
    finally:
        proc.stop()


async def _wait_polling(caplog: pytest.LogCaptureFixture) -> None:
    """Until the coordinator has been told there is no push (its subscription attempt)."""
    for _ in range(300):
        if any("no push updates, polling" in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the push subscription was never refused")


def _snapshot(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> dict[tuple[str, str], tuple[object, ...]]:
    """Entities of an entry by (domain, unique id without the entry prefix): enabled, state, unit, class."""
    registry = er.async_get(hass)
    prefix = f"{entry.unique_id}_"
    out: dict[tuple[str, str], tuple[object, ...]] = {}
    for ent in er.async_entries_for_config_entry(registry, entry.entry_id):
        state = hass.states.get(ent.entity_id)
        attrs = state.attributes if state else {}
        # An energy total grows with the time since setup: compare everything but its value.
        timed = attrs.get("state_class") in ("total", "total_increasing")
        out[(ent.domain, ent.unique_id.removeprefix(prefix))] = (
            ent.disabled_by is None,
            state.state if state and not timed else None,
            attrs.get("unit_of_measurement"),
            attrs.get("device_class"),
            ent.translation_key,
        )
    return out


def _entity_id(hass: HomeAssistant, entry: NutBridgeConfigEntry, domain: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.unique_id}_{key}")
    assert entity_id is not None, (domain, key)
    return entity_id


def _no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [
        r for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(WATCHED)
        and not (r.name == "homeassistant.loader" and "custom integration" in r.getMessage())
    ]
    assert not noisy, "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in noisy)


async def test_c_upsd_is_polled_with_the_entities_of_the_bridge(
    hass: HomeAssistant, c_upsd: NutConfig, bridge_same: NutConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.nut_bridge")
    # What the C upsd answers the coordinator's SUBSCRIBE: not a command it knows.
    assert realnut.query(c_upsd.port, "SUBSCRIBE *") == b"ERR UNKNOWN-COMMAND\n"

    c_entry = await setup_entry(hass, c_upsd, title="C upsd")
    coordinator = c_entry.runtime_data.coordinator
    await _wait_polling(caplog)
    assert not coordinator.push_active
    assert coordinator.update_interval == UPDATE_INTERVAL

    # Both UPS are devices with the dump's identity, under the server.
    devices = dr.async_get(hass)
    server = devices.async_get_device_by_identifier((DOMAIN, str(c_entry.unique_id)), c_entry.entry_id)
    assert server is not None
    for ups in ("main", "second"):
        identifier = (DOMAIN, f"{c_entry.unique_id}_{ups}")
        device = devices.async_get_device_by_identifier(identifier, c_entry.entry_id)
        assert device is not None and device.via_device_id == server.id
        assert device.manufacturer == "Interop Corp"
    assert hass.states.get("binary_sensor.main_online").state == "on"  # type: ignore[union-attr]
    assert state_of(hass, "sensor.main_status") == "online"
    assert state_of(hass, "sensor.main_battery_charge") == "95.0"
    assert state_of(hass, "sensor.second_battery_charge") == "100.0"

    # The bridge, same .dev files: the same entities, enabled alike, in the same states.
    py_entry = await setup_entry(hass, bridge_same)
    c_entities = _snapshot(hass, c_entry)
    py_entities = _snapshot(hass, py_entry)
    assert len(c_entities) > 40
    assert set(c_entities) == set(py_entities), set(c_entities) ^ set(py_entities)
    differ = {k: (c_entities[k], py_entities[k]) for k in c_entities if c_entities[k] != py_entities[k]}
    assert not differ, differ
    # ... and that comparison covers the readings and the flags.
    assert {("sensor", "main_battery.runtime"), ("sensor", "main_ups.status"),
            ("binary_sensor", "main_status_ol"), ("text", "main_ups.id"),
            ("sensor", "second_input.voltage")} <= set(c_entities)
    assert not coordinator.push_active
    _no_warnings(caplog)


async def test_mains_loss_reaches_home_assistant_by_polling(
    hass: HomeAssistant, c_upsd: NutConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.nut_bridge")
    entry = await setup_entry(hass, c_upsd, title="C upsd")
    coordinator = entry.runtime_data.coordinator
    await _wait_polling(caplog)
    on_battery = _entity_id(hass, entry, "binary_sensor", "main_status_ob")
    assert state_of(hass, on_battery) == "off"

    # Mains lost: dummy-ups re-reads a .dev file whose mtime changed.
    dev = c_upsd.root / "main.dev"
    dev.write_text(ON_BATTERY)
    later = time.time() + 2
    os.utime(dev, (later, later))

    # Only the poll timer runs (no refresh is requested here): move time on until a poll
    # sees the new status.
    deadline = time.monotonic() + 15
    while state_of(hass, on_battery) != "on":
        assert time.monotonic() < deadline, "mains loss never polled"
        async_fire_time_changed(hass, dt_util.utcnow() + UPDATE_INTERVAL + timedelta(seconds=1))
        await hass.async_block_till_done()
        await asyncio.sleep(0.2)
    assert not coordinator.push_active
    assert state_of(hass, _entity_id(hass, entry, "binary_sensor", "main_status_ol")) == "off"
    assert state_of(hass, _entity_id(hass, entry, "sensor", "main_ups.status")) == "on_battery"
    assert state_of(hass, _entity_id(hass, entry, "sensor", "main_battery.charge")) == "80.0"
    assert state_of(hass, _entity_id(hass, entry, "binary_sensor", "second_status_ob")) == "off"
    assert coordinator.update_interval == UPDATE_INTERVAL_ON_BATTERY
    _no_warnings(caplog)


async def test_writes_and_commands_through_c_upsd(
    hass: HomeAssistant, c_upsd: NutConfig, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_entry(hass, c_upsd, title="C upsd")
    # dummy-ups declares ups.id STRING:16 read-write: a text entity writes it with SET VAR.
    ups_id = _entity_id(hass, entry, "text", "main_ups.id")
    assert state_of(hass, ups_id) == "rack-1"
    await hass.services.async_call(
        "text", "set_value", {"entity_id": ups_id, "value": "rack-7"}, blocking=True
    )
    await wait_var(c_upsd, "ups.id", "rack-7", ups="main")
    await refresh_until_state(hass, entry, ups_id, "rack-7")

    # dummy-ups takes an empty status as written (C upsd then serves ups.status ""): the
    # flags become unknown rather than "off", and so does the status.
    await hass.services.async_call(
        DOMAIN, "set_variable",
        {"config_entry_id": entry.entry_id, "ups": "second", "variable": "ups.status", "value": ""},
        blocking=True,
    )
    online = _entity_id(hass, entry, "binary_sensor", "second_status_ol")
    await refresh_until_state(hass, entry, online, "unknown")
    assert state_of(hass, _entity_id(hass, entry, "binary_sensor", "second_status_ob")) == "unknown"
    status = hass.states.get(_entity_id(hass, entry, "sensor", "second_ups.status"))
    assert status is not None and status.state == "unknown"
    assert status.attributes["raw"] == ""
    assert state_of(hass, _entity_id(hass, entry, "binary_sensor", "main_status_ol")) == "on"

    # Instant commands: dummy-ups has none of the buttons' commands, but the driver core's
    # driver.reload runs through upsd to the driver, and its tracked result comes back.
    assert not [e for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
                if e.domain == "button"]
    response = await hass.services.async_call(
        DOMAIN, "run_command", {"config_entry_id": entry.entry_id, "ups": "main", "command": "driver.reload"},
        blocking=True, return_response=True,
    )
    assert response == {"ups": "main", "command": "driver.reload", "result": "SUCCESS"}
    _no_warnings(caplog)
