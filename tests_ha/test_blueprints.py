"""The blueprints in blueprints/automation/nut_bridge/: valid for Home Assistant's own
blueprint and automation code, and acting as real automations against a real bridge."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA, async_validate_config_item
from homeassistant.components.blueprint import Blueprint, BlueprintInputs
from homeassistant.core import HomeAssistant
from homeassistant.helpers import selector
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.nut_bridge.power_events import EVENT_TYPES

from .conftest import (
    DUMMY_DEV,
    REPO,
    Bridge,
    get_var,
    instcmd,
    running_bridge,
    set_var,
    setup_automations,
    setup_entry,
    state_of,
    ups_device,
    wait_for,
)

BLUEPRINTS = REPO / "blueprints" / "automation" / "nut_bridge"
NAMES = ("notify_on_outage", "shutdown_host_on_low_battery", "outlets_off_on_battery")


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like conftest's bridge, but the simulated UPS has three switchable outlets."""
    with running_bridge(tmp_path, outlets=3) as b:
        yield b


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config directory holding the repository's blueprints, as a user installs them."""
    config = tmp_path / "config"
    shutil.copytree(BLUEPRINTS, config / "blueprints" / "automation" / "nut_bridge")
    hass.config.config_dir = str(config)
    return config


def _load(name: str) -> Blueprint:
    return Blueprint(
        load_yaml_dict(BLUEPRINTS / f"{name}.yaml"),
        path=f"nut_bridge/{name}.yaml",
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )


def _use(name: str, **inputs: Any) -> dict[str, Any]:
    return {"use_blueprint": {"path": f"nut_bridge/{name}.yaml", "input": inputs}}


async def _wait_outlets(bridge: Bridge, want: dict[int, str], timeout: float = 15.0) -> None:
    got: dict[int, str] = {}
    for _ in range(int(timeout / 0.1)):
        got = {n: await get_var(bridge, f"outlet.{n}.status") for n in want}
        if got == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"outlets {got}, wanted {want}")


def test_files_are_the_three_blueprints() -> None:
    assert sorted(p.stem for p in BLUEPRINTS.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_blueprint_schema(name: str) -> None:
    blueprint = _load(name)
    assert blueprint.domain == "automation"
    assert blueprint.validate() is None  # the running Home Assistant is recent enough
    meta = blueprint.metadata
    assert meta["source_url"].endswith(f"/blueprints/automation/nut_bridge/{name}.yaml")
    assert meta["description"]
    # Every input has a name and a valid selector; defaults pass their selector.
    for key, spec in blueprint.inputs.items():
        assert spec["name"], key
        validate = selector.selector(spec["selector"])
        if "default" in spec:
            validate(spec["default"])
    # The UPS input only offers NUT Bridge devices.
    assert blueprint.inputs["ups"]["selector"]["device"]["filter"] == [{"integration": "nut_bridge"}]


def test_missing_input_is_reported() -> None:
    blueprint = _load("outlets_off_on_battery")
    inputs = BlueprintInputs(blueprint, _use("outlets_off_on_battery", ups="x"))
    with pytest.raises(Exception, match="outlets"):
        inputs.validate()


async def test_blueprints_generate_valid_automations(
    hass: HomeAssistant, bridge: Bridge, config_dir: Path
) -> None:
    """Inputs substituted and the result validated by the automation integration, device triggers included."""
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    cases = {
        "notify_on_outage": {"ups": sim.id, "notify_action": "notify.test"},
        "shutdown_host_on_low_battery": {
            "ups": sim.id,
            "battery_sensor": "sensor.sim_battery_runtime",
            "shutdown_action": [{"action": "test.shutdown"}],
        },
        "outlets_off_on_battery": {"ups": sim.id, "outlets": ["switch.sim_outlet_3"]},
    }
    for name, inputs in cases.items():
        blueprint = _load(name)
        blueprint_inputs = BlueprintInputs(blueprint, _use(name, **inputs))
        blueprint_inputs.validate()
        for key, value in blueprint_inputs.inputs_with_default.items():
            selector.selector(blueprint.inputs[key]["selector"])(value)
        config = await async_validate_config_item(hass, name, _use(name, **inputs))
        assert config is not None, name
        assert config.validation_status == "ok", (name, config.validation_error)
        device_triggers = [t for t in config["triggers"] if t.get("platform", t.get("trigger")) == "device"]
        assert device_triggers, name
        assert all(t["device_id"] == sim.id and t["domain"] == "nut_bridge" for t in device_triggers)
    types = {t["type"] for t in _load("notify_on_outage").data["triggers"]}
    assert types == set(EVENT_TYPES)


async def test_notify_on_outage(hass: HomeAssistant, bridge: Bridge, config_dir: Path) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    notifications = async_mock_service(hass, "notify", "test")
    extra = async_mock_service(hass, "test", "after_notify")
    await setup_automations(
        hass,
        _use(
            "notify_on_outage",
            ups=sim.id,
            notify_action="notify.test",
            extra_actions=[{"action": "test.after_notify", "data": {"text": "{{ message }}"}}],
        ),
    )
    assert [s.state for s in hass.states.async_all("automation")] == ["on"]

    await instcmd(bridge, "test.failure.start")
    await wait_for("power lost notification", lambda: len(notifications) == 1)
    lost = notifications[0].data
    assert lost["title"] == "Power lost: sim"
    assert lost["message"].startswith("sim lost mains power and runs on battery: charge ")
    charge = lost["message"].split("charge ")[1].split(" %")[0]
    assert 0 < int(charge) <= 100
    assert " min." in lost["message"] and "unknown" not in lost["message"]
    await wait_for("extra action", lambda: len(extra) == 1)
    assert extra[0].data["text"] == lost["message"]

    await instcmd(bridge, "test.failure.stop")
    await wait_for("power restored notification", lambda: len(notifications) == 2)
    assert notifications[1].data["title"] == "Power restored: sim"
    assert notifications[1].data["message"].startswith("Mains power is back on sim: charge ")

    # Low battery: the simulated UPS says LB once its runtime is under battery.runtime.low.
    await set_var(bridge, "battery.runtime.low", "3600")
    await wait_for("battery low notification", lambda: len(notifications) == 3)
    assert notifications[2].data["title"] == "Battery low: sim"
    assert "is low: charge" in notifications[2].data["message"]

    # Not selected by default: replace battery (RB).
    await set_var(bridge, "experimental.sim.battery.health", "40")
    await wait_for("replace battery", lambda: state_of(hass, "binary_sensor.sim_replace_battery") == "on")
    await asyncio.sleep(0.3)
    await hass.async_block_till_done()
    assert len(notifications) == 3


async def test_outlets_off_on_battery(hass: HomeAssistant, bridge: Bridge, config_dir: Path) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    await setup_automations(
        hass,
        _use(
            "outlets_off_on_battery",
            ups=sim.id,
            outlets=["switch.sim_outlet_2", "switch.sim_outlet_3"],
            delay={"seconds": 2},
        ),
    )
    all_on = {1: "on", 2: "on", 3: "on"}
    await _wait_outlets(bridge, all_on)

    # Power back within the delay: nothing is switched off.
    await instcmd(bridge, "test.failure.start")
    await wait_for("on battery", lambda: state_of(hass, "binary_sensor.sim_on_battery") == "on")
    await instcmd(bridge, "test.failure.stop")
    await wait_for("on line", lambda: state_of(hass, "binary_sensor.sim_on_battery") == "off")
    await asyncio.sleep(2.5)
    await _wait_outlets(bridge, all_on, timeout=0.1)

    # Still on battery after the delay: the non-critical outlets go off, through the bridge.
    await instcmd(bridge, "test.failure.start")
    await _wait_outlets(bridge, {1: "on", 2: "off", 3: "off"})
    await wait_for("outlet switch off", lambda: state_of(hass, "switch.sim_outlet_2") == "off")
    assert state_of(hass, "switch.sim_outlet_1") == "on"

    # Power back: switched on again (restore defaults to on).
    await instcmd(bridge, "test.failure.stop")
    await _wait_outlets(bridge, all_on)


async def test_shutdown_host_on_low_battery(hass: HomeAssistant, bridge: Bridge, config_dir: Path) -> None:
    entry = await setup_entry(hass, bridge)
    sim = ups_device(hass, entry, "sim")
    dummy = ups_device(hass, entry, "dummy")
    shutdowns = async_mock_service(hass, "test", "shutdown")

    def shutdown(ups: str, battery_sensor: str, threshold: int, host: str) -> dict[str, Any]:
        action = {"action": "test.shutdown", "data": {"host": host, "why": "{{ trigger.id }}"}}
        return _use(
            "shutdown_host_on_low_battery",
            ups=ups,
            battery_sensor=battery_sensor,
            threshold=threshold,
            shutdown_action=[action],
        )

    await setup_automations(
        hass,
        # Runtime threshold far above the simulated UPS's ~27 min: acts as soon as it is
        # on battery.
        shutdown(sim.id, "sensor.sim_battery_runtime", 60, "nas"),
        # Charge threshold 0: only the UPS's own LB (and FSD) signal.
        shutdown(dummy.id, "sensor.dummy_battery_charge", 0, "pi"),
    )
    assert [s.state for s in hass.states.async_all("automation")] == ["on", "on"]
    await asyncio.sleep(0.3)
    assert shutdowns == []  # on line power: the threshold does not count

    await instcmd(bridge, "test.failure.start")
    await wait_for("runtime threshold", lambda: len(shutdowns) == 1)
    assert shutdowns[0].data == {"host": "nas", "why": "threshold"}

    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OB"))
    await wait_for("dummy on battery", lambda: state_of(hass, "binary_sensor.dummy_on_battery") == "on")
    await asyncio.sleep(0.3)
    assert len(shutdowns) == 1  # 87 % is not below 0
    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OB LB"))
    await wait_for("battery low", lambda: len(shutdowns) == 2)
    assert shutdowns[1].data == {"host": "pi", "why": "battery_low"}
