"""The MQTT publisher against Debian's Mosquitto and real ``nutbridge serve`` processes.

Each test starts its own broker (own config in a temp dir, a free loopback port) and bridges
with simulated UPSes; a paho subscriber reads what Home Assistant would read: the retained
device discovery, state, availability, the bridge's last will, the results of commands.
The sans-IO builders (``nutbridge.mqtt.discovery``) are checked directly at the end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nutbridge.mqtt import discovery as d
from nutbridge.state import Device
from tests.support import realnut
from tests.support.mosquitto import ACCOUNT_USERS, Mosquitto, identity, mosquitto
from tests.support.realnut import BridgeProcess, NutConfig

BROKER_USER, BROKER_PASSWORD = "bridge", "br0ker-pw-XYZ"


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """A paho subscriber (what HA's MQTT integration would see): every message kept, waitable."""

    def __init__(self, port: int, topics: list[str], *, username: str | None = None,
                 password: str | None = None, tls_ca: Path | None = None) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if username:
            self._client.username_pw_set(username, password)
        if tls_ca:
            self._client.tls_set(ca_certs=str(tls_ca))
        self._topics = topics
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.connect("127.0.0.1", port, keepalive=30)
        self._client.loop_start()
        assert self._subscribed.wait(10), "subscriber did not subscribe"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))
            self._cond.notify_all()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait(self, what: str, check: Callable[[Received], bool], timeout: float = 10.0,
             since: float = 0.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m.at >= since and check(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"no message: {what}; topics seen: {topics}")
                self._cond.wait(left)

    def latest(self, topic: str) -> Received | None:
        with self._cond:
            for m in reversed(self.messages):
                if m.topic == topic:
                    return m
        return None

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@contextmanager
def watching(port: int, topics: list[str], **kw: Any) -> Iterator[Watcher]:
    w = Watcher(port, topics, **kw)
    try:
        yield w
    finally:
        w.close()


# ---- a bridge publishing to it --------------------------------------------------------------------

def bridge_config(root: Path, broker: Mosquitto, *, account: bool = True, extra: str = "",
                  dummy: bool = True) -> NutConfig:
    cfg = NutConfig(root)
    root.mkdir(parents=True, exist_ok=True)
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated", outlets="2", serial="SIM-7")
    if dummy:
        (root / "d.dev").write_text("ups.status: OL\nbattery.charge: 90\nups.mfr: Dummy Corp\n")
        cfg.add_ups("dummy", driver="dummy-ups", port=str(root / "d.dev"), pollinterval="1")
    cfg.users += ACCOUNT_USERS
    lines = [f"MQTT_URL mqtt{'s' if broker.tls else ''}://127.0.0.1:{broker.port}", "MAXAGE 5"]
    if account:
        lines.append("MQTT_ACCOUNT mqtt")
    cfg.upsd_extra = "\n".join(lines) + "\n" + extra
    return cfg


def upsd(cfg: NutConfig, *lines: str) -> str:
    return realnut.converse(cfg.port, ["USERNAME admin", "PASSWORD s3cr3t", *lines]).decode()


def events(cfg: NutConfig, ups: str) -> list[dict[str, Any]]:
    """The event history as upsd serves it (LIST EVENT), each record decoded."""
    out = []
    for line in upsd(cfg, f"LIST EVENT {ups}").splitlines():
        if line.startswith(f"EVENT {ups} "):
            quoted = line[len(f"EVENT {ups} "):]
            out.append(json.loads(quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\")))
    return out


def discovery_of(w: Watcher, b: d.BridgeIdentity, ups: str, since: float = 0.0,
                 check: Callable[[dict[str, Any]], bool] = lambda c: True) -> dict[str, Any]:
    topic = d.discovery_topic(b, ups)
    msg = w.wait(f"discovery of {ups}", lambda m: m.topic == topic and bool(m.payload) and check(m.json()),
                 timeout=15, since=since)
    cfg: dict[str, Any] = msg.json()
    return cfg


def state_of(w: Watcher, b: d.BridgeIdentity, ups: str, check: Callable[[dict[str, str]], bool],
             timeout: float = 10.0, since: float = 0.0) -> Received:
    topic = d.state_topic(b, ups)
    return w.wait(f"state of {ups}", lambda m: m.topic == topic and check(m.json()), timeout, since)


def platforms(config: dict[str, Any], platform: str) -> dict[str, dict[str, Any]]:
    return {cid: c for cid, c in config["cmps"].items() if c["p"] == platform}


# ---- tests ----------------------------------------------------------------------------------------

def test_discovery_state_availability_commands(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        cfg = bridge_config(tmp_path / "nut", broker)
        with BridgeProcess.start(cfg) as bridge:
            realnut.wait_ready_ups(cfg.port, ["sim", "dummy"])
            b = identity(cfg)
            root = d.bridge_root(b)
            with watching(broker.port, ["homeassistant/#", f"{root}/#"]) as w:
                # -- retained device discovery per UPS, with the contract's keys
                sim = discovery_of(w, b, "sim", check=lambda c: "battery_charge" in c["cmps"])
                assert w.latest(d.discovery_topic(b, "sim")) is not None
                assert w.wait("retained", lambda m: m.topic == d.discovery_topic(b, "sim")).retain
                assert set(sim) >= {"dev", "o", "cmps", "state_topic", "availability"}
                assert sim["o"]["name"] == "NUT Bridge" and sim["o"]["sw_version"]
                dev = sim["dev"]
                assert dev["identifiers"] == [d.device_id(b, "sim")]
                assert (dev["manufacturer"], dev["model"], dev["serial_number"]) == \
                    ("NUT Bridge", "Simulated UPS", "SIM-7")
                assert dev["via_device"] == d.bridge_device_id(b)
                assert sim["availability_mode"] == "all"
                # the UPS's availability rides in its state message (a dropped one is mended)
                assert sim["availability"] == [
                    {"topic": d.bridge_status_topic(b)},
                    {"topic": d.state_topic(b, "sim"),
                     "value_template": '{{ value_json.get("nutbridge.availability") }}'}]
                assert "object_id" not in json.dumps(sim)
                sensors = platforms(sim, "sensor")
                charge = sensors["battery_charge"]
                assert (charge["device_class"], charge["unit_of_measurement"], charge["state_class"]) == \
                    ("battery", "%", "measurement")
                assert sensors["battery_runtime"]["unit_of_measurement"] == "s"
                assert sensors["input_voltage"]["device_class"] == "voltage"
                assert sensors["input_frequency"]["unit_of_measurement"] == "Hz"
                assert sensors["ups_temperature"]["unit_of_measurement"] == "°C"
                assert sensors["ups_realpower"]["unit_of_measurement"] == "W"
                assert "status" in sensors
                flags = platforms(sim, "binary_sensor")
                assert {"flag_ol", "flag_ob", "flag_lb", "flag_rb", "flag_over", "flag_chrg"} <= set(flags)
                # the account may switch outlet 1 only, run one command, SET variables
                assert set(platforms(sim, "switch")) == {"outlet_1"}
                assert set(platforms(sim, "button")) == {"cmd_test_battery_start_quick"}
                numbers, selects = platforms(sim, "number"), platforms(sim, "select")
                low = numbers["battery_charge_low"]
                assert (low["min"], low["max"]) == (0, 95)
                assert selects["ups_beeper_status"]["options"] == ["enabled", "disabled", "muted"]
                ids = [c["unique_id"] for c in sim["cmps"].values()]
                assert len(ids) == len(set(ids)) and all(i.startswith(d.device_id(b, "sim")) for i in ids)
                dummy = discovery_of(w, b, "dummy")
                assert dummy["dev"]["manufacturer"] == "Dummy Corp"
                bridge_dev = w.wait("bridge device", lambda m: m.topic == d.bridge_discovery_topic(b)).json()
                assert bridge_dev["dev"]["identifiers"] == [d.bridge_device_id(b)]
                assert w.wait("online", lambda m: m.topic == d.bridge_status_topic(b)).payload == b"online"

                # -- state follows a mains loss within a second
                state_of(w, b, "sim", lambda s: s["ups.status"].split()[0] == "OL")
                t0 = time.monotonic()
                assert upsd(cfg, "INSTCMD sim test.failure.start").count("OK") >= 3
                st = state_of(w, b, "sim", lambda s: "OB" in s["ups.status"].split(), since=t0)
                assert st.at - t0 < 1.0, f"state took {st.at - t0:.2f} s"
                upsd(cfg, "INSTCMD sim test.failure.stop")

                # -- the outlet switch: through the account, recorded as its action
                t0 = time.monotonic()
                w.publish(sim["cmps"]["outlet_1"]["command_topic"], "OFF")
                res = w.wait("result", lambda m: m.topic == d.result_topic(b, "sim"), since=t0).json()
                assert res["answer"].startswith("OK") and res["result"] == "SUCCESS" and res["user"] == "mqtt"
                state_of(w, b, "sim", lambda s: s["outlet.1.status"] == "off", since=t0)
                assert b'outlet.1.status "off"' in realnut.query(cfg.port, "GET VAR sim outlet.1.status")
                assert any(e.get("command") == "outlet.1.load.off" and e.get("user") == "mqtt"
                           for e in events(cfg, "sim"))

                # -- a command the account may not run: refused by upsd's checks, not executed
                t0 = time.monotonic()
                w.publish(f"{d.ups_root(b, 'sim')}/cmd/load.off", "PRESS")
                res = w.wait("refusal", lambda m: m.topic == d.result_topic(b, "sim"), since=t0).json()
                assert res["answer"] == "ERR ACCESS-DENIED"
                w.publish(f"{d.ups_root(b, 'sim')}/outlet/2", "OFF")
                res = w.wait("refusal 2", lambda m: m.topic == d.result_topic(b, "sim")
                             and "outlet.2" in m.json()["request"], since=t0).json()
                assert res["answer"] == "ERR ACCESS-DENIED"
                time.sleep(0.5)
                assert b'"OL' in realnut.query(cfg.port, "GET VAR sim ups.status")
                assert b'"on"' in realnut.query(cfg.port, "GET VAR sim outlet.2.status")
                assert "failed to run load.off" in bridge.log()
                assert not any(e.get("command") == "load.off" for e in events(cfg, "sim"))

                # -- garbage on the command topics is dropped; the next good request works
                for topic, payload in [(f"{d.ups_root(b, 'sim')}/cmd/load.off", b"\xff\xfe\x00"),
                                       (f"{d.ups_root(b, 'sim')}/set/ups.id", b"x" * 100_000),
                                       (f"{d.ups_root(b, 'sim')}/outlet/1", b"sideways"),
                                       (f"{d.ups_root(b, 'nosuch')}/cmd/beeper.mute", b""),
                                       (f"{d.bridge_root(b)}/%ZZ/cmd/x", b"")]:
                    w.publish(topic, payload)
                # -- a SET through a number entity
                t0 = time.monotonic()
                w.publish(numbers["battery_charge_low"]["command_topic"], "33")
                state_of(w, b, "sim", lambda s: s["battery.charge.low"] == "33", since=t0)

                # -- HA restarted: discovery again, live (not the retained copy)
                t0 = time.monotonic()
                w.publish("homeassistant/status", "online")
                again = w.wait("discovery re-sent", lambda m: m.topic == d.discovery_topic(b, "sim")
                               and not m.retain, timeout=5, since=t0)
                assert again.json()["cmps"].keys() == sim["cmps"].keys()
                state_of(w, b, "sim", lambda s: True, timeout=5, since=t0)

                # -- the dummy's driver loses its data: that UPS alone goes offline
                assert w.wait("dummy online", lambda m: m.topic == d.availability_topic(b, "dummy")).payload \
                    == b"online"
                t0 = time.monotonic()
                (cfg.root / "d.dev").unlink()
                w.wait("dummy offline", lambda m: m.topic == d.availability_topic(b, "dummy")
                       and m.payload == b"offline", timeout=20, since=t0)
                sim_avail = w.latest(d.availability_topic(b, "sim"))
                assert sim_avail is not None and sim_avail.payload == b"online"

                # -- kill -9: the broker publishes the bridge's last will
                t0 = time.monotonic()
                bridge.proc.send_signal(signal.SIGKILL)
                bridge.proc.wait(5)
                w.wait("last will", lambda m: m.topic == d.bridge_status_topic(b) and m.payload == b"offline",
                       timeout=10, since=t0)
            assert "mq77-secret" not in bridge.log() and "Traceback" not in bridge.log()
            bridge.proc = subprocess.Popen(["true"])  # the context's stop() wants a process ending 0
            bridge.proc.wait()


def test_read_only_without_account(tmp_path: Path) -> None:
    """No MQTT_ACCOUNT: no command entities announced, command topics ignored."""
    with mosquitto(tmp_path / "broker") as broker:
        cfg = bridge_config(tmp_path / "nut", broker, account=False, dummy=False)
        with BridgeProcess.start(cfg) as bridge:
            realnut.wait_ready_ups(cfg.port, ["sim"])
            b = identity(cfg)
            with watching(broker.port, ["homeassistant/#", f"{d.bridge_root(b)}/#"]) as w:
                sim = discovery_of(w, b, "sim", check=lambda c: "battery_charge" in c["cmps"])
                kinds = {c["p"] for c in sim["cmps"].values()}
                assert kinds == {"sensor", "binary_sensor"}
                assert "command_topic" not in json.dumps(sim)
                # the outlets' state is still shown (read-only)
                assert sim["cmps"]["outlet_1_status"]["p"] == "binary_sensor"
                t0 = time.monotonic()
                w.publish(f"{d.ups_root(b, 'sim')}/outlet/1", "OFF")
                w.publish(f"{d.ups_root(b, 'sim')}/cmd/load.off", "PRESS")
                w.publish(f"{d.ups_root(b, 'sim')}/set/battery.charge.low", "33")
                time.sleep(1.5)
                assert not [m for m in w.messages if m.at >= t0 and m.topic == d.result_topic(b, "sim")]
                assert b'"on"' in realnut.query(cfg.port, "GET VAR sim outlet.1.status")
                assert b'"OL' in realnut.query(cfg.port, "GET VAR sim ups.status")
                assert b'"33"' not in realnut.query(cfg.port, "GET VAR sim battery.charge.low")
                # a clean stop: offline said by the bridge itself (bridge and UPS)
                t0 = time.monotonic()
                assert bridge.stop() == 0
                w.wait("bridge offline", lambda m: m.topic == d.bridge_status_topic(b)
                       and m.payload == b"offline", since=t0)
                w.wait("ups offline", lambda m: m.topic == d.availability_topic(b, "sim")
                       and m.payload == b"offline", since=t0)
            assert "Traceback" not in bridge.log()


def test_two_bridges_same_ups_name(tmp_path: Path) -> None:
    """Two bridges, each with a UPS "sim": two HA devices, no unique id in common."""
    with mosquitto(tmp_path / "broker") as broker:
        cfg1 = bridge_config(tmp_path / "nut1", broker, dummy=False)
        cfg2 = bridge_config(tmp_path / "nut2", broker, dummy=False)
        with BridgeProcess.start(cfg1), BridgeProcess.start(cfg2):
            realnut.wait_ready_ups(cfg1.port, ["sim"])
            realnut.wait_ready_ups(cfg2.port, ["sim"])
            b1, b2 = identity(cfg1), identity(cfg2)
            assert b1.server_id != b2.server_id
            with watching(broker.port, ["homeassistant/#"]) as w:
                c1 = discovery_of(w, b1, "sim", check=lambda c: "battery_charge" in c["cmps"])
                c2 = discovery_of(w, b2, "sim", check=lambda c: "battery_charge" in c["cmps"])
            assert d.discovery_topic(b1, "sim") != d.discovery_topic(b2, "sim")
            ids1 = {c["unique_id"] for c in c1["cmps"].values()}
            ids2 = {c["unique_id"] for c in c2["cmps"].values()}
            assert len(ids1) == len(c1["cmps"]) and not ids1 & ids2
            assert c1["dev"]["identifiers"] != c2["dev"]["identifiers"]
            assert c1["state_topic"] != c2["state_topic"]
        # stable across restarts: the same ids again
        with BridgeProcess.start(cfg1):
            realnut.wait_ready_ups(cfg1.port, ["sim"])
            assert identity(cfg1) == b1
            with watching(broker.port, ["homeassistant/#"]) as w:
                again = discovery_of(w, b1, "sim", check=lambda c: "battery_charge" in c["cmps"])
            assert {c["unique_id"] for c in again["cmps"].values()} == ids1


def test_broker_restart_and_reload(tmp_path: Path) -> None:
    """The broker goes away and comes back (without persistence): everything is published again.
    A reload adding and removing UPSes adds and clears their retained discovery."""
    with mosquitto(tmp_path / "broker") as broker:
        cfg = bridge_config(tmp_path / "nut", broker)
        with BridgeProcess.start(cfg) as bridge:
            realnut.wait_ready_ups(cfg.port, ["sim", "dummy"])
            b = identity(cfg)
            with watching(broker.port, ["homeassistant/#"]) as w:
                discovery_of(w, b, "sim")
            broker.stop()
            time.sleep(2)
            broker.start()
            t0 = time.monotonic()
            with watching(broker.port, ["homeassistant/#", f"{d.bridge_root(b)}/#"]) as w:
                sim = discovery_of(w, b, "sim", check=lambda c: "battery_charge" in c["cmps"])
                assert w.wait("online", lambda m: m.topic == d.bridge_status_topic(b)).payload == b"online"
                state_of(w, b, "sim", lambda s: "battery.charge" in s, timeout=5)
                avail = w.wait("avail", lambda m: m.topic == d.availability_topic(b, "sim"))
                assert avail.payload == b"online"
                assert time.monotonic() - t0 < 15
                log = bridge.log()
                assert log.count("retrying") == 1, log[-2000:]  # once per outage, then quietly

                # reload: dummy goes, extra comes; the account loses its outlet rights
                assert sim["cmps"]["outlet_1"]["p"] == "switch"
                cfg.ups.pop("dummy")
                cfg.add_ups("extra", driver="nutbridge-sim", port="simulated")
                cfg.users = cfg.users.replace("    instcmds = outlet.1.load.off\n", "")
                cfg.write()
                t0 = time.monotonic()
                bridge.proc.send_signal(signal.SIGHUP)
                discovery_of(w, b, "extra", since=t0)
                w.wait("dummy cleared", lambda m: m.topic == d.discovery_topic(b, "dummy") and not m.payload,
                       since=t0)
                # the switch is removed as HA's contract says: {"p": ...} once, then left out
                goodbye = discovery_of(w, b, "sim", since=t0,
                                       check=lambda c: c["cmps"].get("outlet_1") == {"p": "switch"})
                after = discovery_of(w, b, "sim", since=t0, check=lambda c: "outlet_1" not in c["cmps"])
                assert after["cmps"]["outlet_1_status"]["p"] == "binary_sensor"
                assert set(goodbye["cmps"]) - set(after["cmps"]) == {"outlet_1"}


def test_frozen_broker_neither_blocks_nor_floods(tmp_path: Path) -> None:
    """A broker that stops reading (SIGSTOP) does not slow upsd down; changes made meanwhile
    arrive afterwards as the latest state, and bursts are coalesced (<= 1 message / 100 ms)."""
    with mosquitto(tmp_path / "broker") as broker:
        cfg = bridge_config(tmp_path / "nut", broker, dummy=False)
        with BridgeProcess.start(cfg) as bridge:
            realnut.wait_ready_ups(cfg.port, ["sim"])
            b = identity(cfg)
            topic = d.state_topic(b, "sim")
            with watching(broker.port, [topic]) as w:
                state_of(w, b, "sim", lambda s: "ups.id" in s)
                # a burst of 40 changes in well under a second: coalesced
                t0 = time.monotonic()
                upsd(cfg, *(f"SET VAR sim ups.id burst{i}" for i in range(40)))
                state_of(w, b, "sim", lambda s: s["ups.id"] == "burst39", since=t0)
                time.sleep(0.3)
                sent = [m for m in w.messages if m.topic == topic and m.at >= t0]
                span = sent[-1].at - t0
                assert len(sent) <= span / 0.1 + 3, (len(sent), span)

                assert broker.proc is not None
                broker.proc.send_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    for i in range(20):
                        answer = upsd(cfg, f"SET VAR sim ups.id frozen{i}")
                        assert answer.endswith("OK\n"), answer
                    assert time.monotonic() - started < 5, "upsd slowed down by the broker"
                finally:
                    broker.proc.send_signal(signal.SIGCONT)
                t1 = time.monotonic()
                state_of(w, b, "sim", lambda s: s["ups.id"] == "frozen19", since=t1 - 5, timeout=15)
            assert "Traceback" not in bridge.log()


def _ca_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1 (also the server's) and its key."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    crt, pem = directory / "broker.crt", directory / "broker.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    return crt, pem


@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls+password"])
def test_broker_password_and_tls(tmp_path: Path, tls: bool) -> None:
    realnut.require_module("cryptography")
    certs = _ca_certificate(tmp_path / "pki") if tls else None
    with mosquitto(tmp_path / "broker", users={BROKER_USER: BROKER_PASSWORD}, tls=certs) as broker:
        extra = f"MQTT_USERNAME {BROKER_USER}\nMQTT_PASSWORD {BROKER_PASSWORD}\n"
        if certs:
            extra += f"MQTT_CAFILE {certs[0]}\n"
        # first a wrong password: refused by the broker, said once, the bridge carries on
        bad = bridge_config(tmp_path / "bad", broker, dummy=False,
                            extra=f"MQTT_USERNAME {BROKER_USER}\nMQTT_PASSWORD wrong-pw-123\n"
                            + (f"MQTT_CAFILE {certs[0]}\n" if certs else ""))
        with BridgeProcess.start(bad) as bridge:
            realnut.wait_ready_ups(bad.port, ["sim"])
            deadline = time.monotonic() + 10
            while "retrying" not in bridge.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "retrying" in bridge.log()
            assert "wrong-pw-123" not in bridge.log()
        cfg = bridge_config(tmp_path / "nut", broker, dummy=False, extra=extra)
        with BridgeProcess.start(cfg) as bridge:
            realnut.wait_ready_ups(cfg.port, ["sim"])
            b = identity(cfg)
            with watching(broker.port, ["homeassistant/#", f"{d.bridge_root(b)}/#"], username=BROKER_USER,
                          password=BROKER_PASSWORD, tls_ca=certs[0] if certs else None) as w:
                discovery_of(w, b, "sim", check=lambda c: "battery_charge" in c["cmps"])
                state_of(w, b, "sim", lambda s: "battery.charge" in s)
            assert BROKER_PASSWORD not in bridge.log() and "mq77-secret" not in bridge.log()
            assert f"connected to mqtt{'s' if tls else ''}://127.0.0.1:{broker.port}" in bridge.log()


# ---- the sans-IO builders -------------------------------------------------------------------------

B = d.BridgeIdentity("0123456789abcdef0123456789abcdef", "1.0", "host")


def _device(name: str = "ups") -> Device:
    dev = Device(name)
    with dev.batch():
        dev.set("ups.status", "OL CHRG")
        dev.set("battery.charge", "80")
        dev.set("outlet.1.status", "on")
        dev.set("ups.delay.shutdown", "20", rw=True)
        dev.add_range("ups.delay.shutdown", 0, 600)
        dev.set("ups.id", "x", rw=True, string=True, aux=8)
        for c in ("outlet.1.load.on", "outlet.1.load.off", "load.off", "beeper.mute"):
            dev.add_cmd(c)
    dev.data_ok()
    return dev


def test_ids_and_topics_are_safe_and_distinct() -> None:
    assert d.device_id(B, "ups") == d.device_id(B, "UPS")  # NUT names are case-insensitive
    assert d.device_id(B, "ups.a") != d.device_id(B, "ups_a")
    for name in ("ups.a", "a b", "x/y", "+", "#", "ü"):
        obj = d.discovery_topic(B, name).split("/")[2]
        assert obj and all(c.isascii() and (c.isalnum() or c in "_-") for c in obj)
        seg = d.segment(name)
        assert "/" not in seg and "+" not in seg and "#" not in seg and " " not in seg
        req = d.parse_request(B, f"{d.ups_root(B, name)}/cmd/beeper.mute", b"PRESS")
        assert req is not None and req.ups == name
    other = d.BridgeIdentity("f" * 32, "1.0")
    assert d.device_id(B, "ups") != d.device_id(other, "ups")


def test_parse_request_rejects_malformed() -> None:
    root = d.ups_root(B, "ups")
    assert d.parse_request(B, f"{root}/outlet/1", b"off") == \
        d.Request("ups", ("INSTCMD", "ups", "outlet.1.load.off"))
    assert d.parse_request(B, f"{root}/set/ups.id", b"abc") == \
        d.Request("ups", ("SET", "VAR", "ups", "ups.id", "abc"))
    assert d.parse_request(B, f"{root}/cmd/load.off.delay", b"30") == \
        d.Request("ups", ("INSTCMD", "ups", "load.off.delay", "30"))
    for topic, payload in [(f"{root}/outlet/1", b"maybe"), (f"{root}/outlet/x", b"ON"),
                           (f"{root}/cmd/a b", b""), (f"{root}/cmd/x", b"\xff\xfe"),
                           (f"{root}/set/ups.id", b"a\nb"), (f"{root}/set/ups.id", b"x" * 1000),
                           (f"{root}/other/x", b""), (f"{root}/cmd", b""), ("elsewhere/ups/cmd/x", b""),
                           (f"{root}/cmd/x/extra", b""), (f"{root}/cmd/x", b'a "b"')]:
        assert d.parse_request(B, topic, payload) is None, (topic, payload)


def test_device_config_follows_rights() -> None:
    dev = _device()
    ro = d.device_config(B, dev)
    assert {c["p"] for c in ro["cmps"].values()} == {"sensor", "binary_sensor"}
    full = d.device_config(B, dev, d.Rights(frozenset({"all"}), True))
    assert full["cmps"]["outlet_1"]["p"] == "switch"
    assert full["cmps"]["cmd_load_off"]["enabled_by_default"] is False  # cuts power: opt-in
    assert "enabled_by_default" not in full["cmps"]["cmd_beeper_mute"]
    assert "cmd_outlet_1_load_on" not in full["cmps"]  # the switch covers it
    assert full["cmps"]["ups_delay_shutdown"]["p"] == "number"
    assert (full["cmps"]["ups_delay_shutdown"]["min"], full["cmps"]["ups_delay_shutdown"]["max"]) == (0, 600)
    assert full["cmps"]["ups_id"]["p"] == "text" and full["cmps"]["ups_id"]["max"] == 8
    # removing an entity: {"p": ...} once, as HA's contract says
    gone = d.with_removals(ro, d.components_of(full))
    assert gone["cmps"]["outlet_1"] == {"p": "switch"}
    assert d.components_of(gone) == d.components_of(ro)


def test_state_payload_is_bounded() -> None:
    dev = _device()
    for i in range(2000):
        dev.set(f"x.{i:04d}.name", "v" * 200)
    state = d.state_payload(dev, ["battery.charge"])
    assert len(d.encode(state)) <= d.MAX_STATE_BYTES + 512
    assert state["battery.charge"] == "80" and state["ups.status"] == "OL CHRG"
    assert state[d.KEY_DRIVER] == "ok"
    dev.latch_fsd()
    assert d.state_payload(dev)["ups.status"] == "FSD OL CHRG"
    huge = d.device_config(B, dev, d.Rights(frozenset({"all"}), True))
    assert len(huge["cmps"]) <= d.MAX_COMPONENTS


# ---- pacing: measured values wait for MQTT_INTERVAL, status does not ---------------------------

def test_pacing_urgent_changes_interval_and_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher in this process (real Mosquitto, a paho subscriber): a change of measured
    values only goes out MQTT_INTERVAL after the UPS's last state message, a status change at
    once; an unchanged state is re-sent every REFRESH seconds, and carries the availability."""
    import asyncio

    from nutbridge.config.upsd_conf import MqttSettings, UpsdConf
    from nutbridge.config.users import Users
    from nutbridge.history import History
    from nutbridge.mqtt import publisher
    from nutbridge.server.core import Core
    from nutbridge.server.descriptions import Descriptions
    from nutbridge.server.frontend import Frontend

    interval = 2.0
    monkeypatch.setattr(publisher, "REFRESH", 4.0)
    dev = _device("pace")
    core = Core([dev], Users(), UpsdConf(), Descriptions.load())
    frontend = Frontend(core, History(None), core.conf, lambda: "f" * 32, "0.0-test")

    with mosquitto(tmp_path / "broker") as broker:
        settings = MqttSettings("127.0.0.1", broker.port, False, interval=interval)
        b = d.BridgeIdentity("f" * 32, "0.0-test", "", settings.discovery_prefix, settings.base_topic)
        topic = d.state_topic(b, "pace")
        with watching(broker.port, [topic, d.bridge_status_topic(b)]) as w:
            pub = publisher.MqttPublisher(frontend, settings)
            asyncio.run(_pacing(pub, dev, w, topic, interval))
            # the bridge's "online" (every UPS's availability in HA) was said again too
            status = d.bridge_status_topic(b)
            online = [m.at for m in w.messages if m.topic == status and m.payload == b"online"]
            assert len(online) >= 2 and online[1] - online[0] >= publisher.REFRESH - 0.5, online


async def _pacing(pub: Any, dev: Device, w: Watcher, topic: str, interval: float) -> None:
    import asyncio

    from nutbridge.mqtt import publisher

    def states(since: float) -> list[Received]:
        with w._cond:
            return [m for m in w.messages if m.topic == topic and m.at >= since]

    async def until(what: str, check: Callable[[], bool], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out: {what}"
            await asyncio.sleep(0.02)
        return time.monotonic()

    loop, fresh = asyncio.get_running_loop(), [True]

    def keep_fresh() -> None:  # a driver's polls: the data stay fresh (MAXAGE 15)
        if fresh[0]:
            dev.heard()
            loop.call_later(1.0, keep_fresh)

    keep_fresh()
    await pub.start()
    try:
        await until("first state", lambda: bool(states(0)), 10)
        first = states(0)[-1]
        assert first.json()[d.KEY_AVAILABLE] == "online"
        # a measured value changes right after a state message: it waits for the interval
        t0 = time.monotonic()
        dev.set("battery.charge", "79")
        got = await until("charge 79", lambda: any(m.json().get("battery.charge") == "79"
                                                  for m in states(t0)), interval + 3)
        assert got - first.at >= interval - 0.1, (got - first.at)
        # the status changes right after that message: it goes out at once
        sent = states(t0)[-1].at
        t1 = time.monotonic()
        dev.set_status("OB", "DISCHRG")
        got = await until("OB", lambda: any(m.json()["ups.status"] == "OB DISCHRG"
                                           for m in states(t1)), interval)
        assert got - t1 < 0.5 and got - sent < interval - 0.5, (got - t1, got - sent)
        # so does a writable setting (someone just SET it)
        t2 = time.monotonic()
        dev.set("ups.delay.shutdown", "30", rw=True)
        got = await until("setting", lambda: any(m.json().get("ups.delay.shutdown") == "30"
                                                for m in states(t2)), interval)
        assert got - t2 < 0.5
        # nothing changes: the same state again after REFRESH (a dropped copy is mended)
        last = states(t2)[-1]
        again = await until("refresh", lambda: bool(states(last.at + 0.01)), publisher.REFRESH + 3)
        assert again - last.at >= publisher.REFRESH - 0.1
        assert states(last.at + 0.01)[0].payload == last.payload
        # stale data: the state message itself says offline (what HA's availability reads)
        fresh[0] = False
        t3 = time.monotonic()
        dev.data_stale()
        await until("offline", lambda: any(m.json()[d.KEY_AVAILABLE] == "offline"
                                           for m in states(t3)), 3)
    finally:
        await pub.stop()



def test_mqtt_settings_in_upsd_conf(tmp_path: Path) -> None:
    """MQTT_* keywords in any order; MQTT_INTERVAL checked with the file and line."""
    from nutbridge.config.parser import ConfigError
    from nutbridge.config.upsd_conf import DEFAULT_MQTT_INTERVAL, parse_upsd_conf

    conf = tmp_path / "upsd.conf"
    conf.write_text("MQTT_INTERVAL 2.5\nMQTT_ACCOUNT mqtt\nMQTT_URL mqtts://broker.lan\nMQTT_USERNAME u\n")
    m = parse_upsd_conf(conf).mqtt
    assert m is not None
    assert (m.host, m.port, m.tls, m.interval, m.account, m.username) == \
        ("broker.lan", 8883, True, 2.5, "mqtt", "u")
    conf.write_text("MQTT_URL mqtt://127.0.0.1\n")
    m = parse_upsd_conf(conf).mqtt
    assert m is not None and m.interval == DEFAULT_MQTT_INTERVAL == 10.0
    for bad in ("-1", "nan", "inf", "3601", "soon", "1 2"):
        conf.write_text(f"MQTT_URL mqtt://127.0.0.1\nMQTT_INTERVAL {bad}\n")
        with pytest.raises(ConfigError) as err:
            parse_upsd_conf(conf)
        assert f"{conf}:2" in str(err.value) and "MQTT_INTERVAL" in str(err.value), bad
