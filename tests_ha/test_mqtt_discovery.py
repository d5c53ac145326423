"""Home Assistant's own MQTT integration, connected to a real Mosquitto the bridge publishes to.

Nothing is mocked: Debian's ``mosquitto`` on a free loopback port, a real ``nutbridge serve``
with ``MQTT_URL`` (a simulated UPS with two outlets, a dummy-ups), and HA's ``mqtt`` config
entry pointing at the broker. HA builds the devices and entities from the bridge's device
discovery alone; they follow a mains loss; an MQTT switch turned off in HA switches the
simulated outlet (through the MQTT_ACCOUNT's upsd.users rights); a UPS whose data go stale
turns unavailable while the bridge's other UPS stays live.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from nutbridge.mqtt import discovery as d
from tests.support.mosquitto import ACCOUNT_USERS, Mosquitto, identity

from .conftest import Bridge, instcmd, running_bridge, state_of, wait_for, wait_var


@dataclass
class Setup:
    broker: Mosquitto
    bridge: Bridge
    ids: d.BridgeIdentity


@pytest.fixture
def mqtt_bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Setup]:
    """A broker, and a bridge publishing to it with an MQTT account (outlet 1, one test)."""
    broker = Mosquitto(tmp_path / "broker").start()
    try:
        extra = f"MQTT_URL mqtt://127.0.0.1:{broker.port}\nMQTT_ACCOUNT mqtt\nMAXAGE 5\n"
        (tmp_path / "nut").mkdir()
        with running_bridge(tmp_path / "nut", outlets=2, upsd_extra=extra, users=ACCOUNT_USERS) as bridge:
            yield Setup(broker, bridge, identity(bridge.cfg))
    finally:
        broker.stop()


def _entity(hass: HomeAssistant, platform: str, unique_id: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(platform, "mqtt", unique_id)


async def test_ha_builds_devices_and_follows_the_ups(
    hass: HomeAssistant, mock_hass_config: None, mqtt_bridge: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # mock_hass_config: the harness's empty configuration.yaml, which MQTT's set-up reads
    b, bridge = mqtt_bridge.ids, mqtt_bridge.bridge
    entry = MockConfigEntry(domain="mqtt", title="Mosquitto", version=1, minor_version=2,
                            data={"broker": "127.0.0.1", "port": mqtt_bridge.broker.port, "protocol": "5"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    sim = d.device_id(b, "sim")
    wanted = {("sensor", "battery_charge"), ("sensor", "status"), ("binary_sensor", "flag_ob"),
              ("binary_sensor", "flag_ol"), ("switch", "outlet_1"),
              ("button", "cmd_test_battery_start_quick"), ("number", "battery_charge_low"),
              ("select", "ups_beeper_status")}
    dummy_charge = f"{d.device_id(b, 'dummy')}_battery_charge"  # a writable variable on dummy-ups
    await wait_for("entities from discovery",
                   lambda: all(_entity(hass, p, f"{sim}_{cid}") for p, cid in wanted)
                   and _entity(hass, "number", dummy_charge) is not None, timeout=20)

    # the devices: one per UPS, via the bridge's own device
    devices = dr.async_get(hass)
    ups = devices.async_get_device_by_identifier(("mqtt", sim), entry.entry_id)
    hub = devices.async_get_device_by_identifier(("mqtt", d.bridge_device_id(b)), entry.entry_id)
    dummy = devices.async_get_device_by_identifier(("mqtt", d.device_id(b, "dummy")), entry.entry_id)
    assert ups is not None and hub is not None and dummy is not None
    assert (ups.manufacturer, ups.model, ups.serial_number) == ("NUT Bridge", "Simulated UPS", "SIM-42")
    assert ups.via_device_id == hub.id and dummy.via_device_id == hub.id
    assert dummy.manufacturer == "Dummy Corp"

    # the entities: classes and units from the discovery
    reg = er.async_get(hass)
    charge = _entity(hass, "sensor", f"{sim}_battery_charge")
    assert charge is not None
    entry_charge = reg.async_get(charge)
    assert entry_charge is not None and entry_charge.device_id == ups.id
    await wait_for("available", lambda: state_of(hass, charge) not in ("unavailable", "unknown"))
    attrs = hass.states.get(charge)
    assert attrs is not None
    assert attrs.attributes["device_class"] == "battery" and attrs.attributes["unit_of_measurement"] == "%"
    assert float(attrs.state) > 0
    runtime = _entity(hass, "sensor", f"{sim}_battery_runtime")
    assert runtime is not None and hass.states.get(runtime) is not None
    on_battery = _entity(hass, "binary_sensor", f"{sim}_flag_ob")
    online = _entity(hass, "binary_sensor", f"{sim}_flag_ol")
    outlet = _entity(hass, "switch", f"{sim}_outlet_1")
    status = _entity(hass, "sensor", f"{sim}_status")
    assert on_battery and online and outlet and status
    await wait_for("state", lambda: state_of(hass, online) == "on")
    assert state_of(hass, on_battery) == "off"
    assert state_of(hass, outlet) == "on"
    # rights decide what is announced: outlet 2 and load.off are not the account's
    assert _entity(hass, "switch", f"{sim}_outlet_2") is None
    assert _entity(hass, "button", f"{sim}_cmd_load_off") is None

    # a mains loss on the simulated UPS reaches the entities
    await instcmd(bridge, "test.failure.start")
    await wait_for("on battery", lambda: state_of(hass, on_battery) == "on", timeout=3)
    assert "OB" in state_of(hass, status).split() and state_of(hass, online) == "off"
    await instcmd(bridge, "test.failure.stop")
    await wait_for("back on line", lambda: state_of(hass, online) == "on", timeout=3)

    # the switch really switches the outlet (through the bridge's MQTT account)
    await hass.services.async_call("switch", "turn_off", {"entity_id": outlet}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "off")
    await wait_for("switch off", lambda: state_of(hass, outlet) == "off", timeout=3)
    await hass.services.async_call("switch", "turn_on", {"entity_id": outlet}, blocking=True)
    await wait_var(bridge, "outlet.1.status", "on")
    await wait_for("switch on", lambda: state_of(hass, outlet) == "on", timeout=3)

    # the dummy's driver loses its data: HA shows that UPS unavailable (read from its state
    # message's availability), the other UPS of the same bridge stays live
    dummy_entity = _entity(hass, "number", dummy_charge)
    assert dummy_entity is not None and state_of(hass, dummy_entity) != "unavailable"
    (bridge.cfg.root / "dummy.dev").unlink()
    await wait_for("dummy unavailable", lambda: state_of(hass, dummy_entity) == "unavailable", timeout=20)
    assert state_of(hass, online) == "on"

    # HA took every discovery and state message without a complaint (schema, templates, units)
    complaints = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                  if r.levelno >= logging.WARNING and r.name.startswith("homeassistant.components.")]
    assert not complaints, complaints

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
