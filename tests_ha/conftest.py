"""Fixtures and helpers: a real NUT Bridge server process, config entries set up against it.

pytest-homeassistant-custom-component ships its own ``custom_components`` package;
ours must be imported first so that it is the one Home Assistant's loader finds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO / "bridge"), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import pytest  # noqa: E402
from freezegun.api import FrozenDateTimeFactory  # noqa: E402
from homeassistant.config_entries import ConfigEntryState  # noqa: E402
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, EntityCategory  # noqa: E402
from homeassistant.core import HomeAssistant  # noqa: E402
from homeassistant.helpers import device_registry as dr  # noqa: E402
from homeassistant.helpers import entity_registry as er  # noqa: E402
from homeassistant.setup import async_setup_component  # noqa: E402
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed  # noqa: E402

import custom_components.nut_bridge  # noqa: E402  (must win over the plugin's package)
from custom_components.nut_bridge.const import DOMAIN  # noqa: E402
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry  # noqa: E402
from custom_components.nut_bridge.entity import ups_identifier  # noqa: E402
from nutbridge.client import NutClient  # noqa: E402
from tests.support.realnut import BridgeProcess, NutConfig  # noqa: E402
from tests.support.skip_policy import register as register_skip_policy  # noqa: E402

assert Path(custom_components.nut_bridge.__file__).parent == REPO / "custom_components" / "nut_bridge"


def pytest_configure(config: pytest.Config) -> None:
    # as in tests/: under NUTBRIDGE_REQUIRE_INTEROP=1 a skip not on the allow-list of
    # tests/support/skip_policy.py fails the session
    register_skip_policy(config)


DUMMY_DEV = """\
ups.status: OL
ups.mfr: Dummy Corp
ups.model: File UPS
ups.serial: DUMMY-0001
battery.charge: 87
ups.load: 12
"""

# Manufacturer and model of the device of each UPS a running_bridge serves (ups.mfr, ups.model).
UPS_DEVICES = {"sim": ("NUT Bridge", "Simulated UPS"), "dummy": ("Dummy Corp", "File UPS")}

# Long enough that no scheduled poll happens during a test (see the slow_polling fixture).
SLOW_POLL = timedelta(hours=6)
# Where the frozen_time fixture stops the clock.
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Bridge:
    cfg: NutConfig
    proc: BridgeProcess
    dummy_file: Path

    @property
    def port(self) -> int:
        return self.cfg.port


class Server(Protocol):
    """A NUT server the tests talk to: a Bridge, or the NutConfig of a C upsd."""

    @property
    def port(self) -> int: ...


@contextmanager
def running_bridge(
    root: Path,
    *,
    sim: bool = True,
    outlets: int = 0,
    dummy_dev: str | None = DUMMY_DEV,
    upsd_extra: str = "",
    users: str = "",
) -> Iterator[Bridge]:
    """``nutbridge serve`` on a configuration in ``root``, stopped (cleanly) on exit.

    UPS ``sim`` (nutbridge-sim, with ``outlets`` switchable outlets) unless ``sim`` is
    false; UPS ``dummy`` (dummy-ups) reading ``root/dummy.dev`` written from
    ``dummy_dev``, unless that is None. ``users`` is appended to the default upsd.users.
    """
    cfg = NutConfig(root, upsd_extra=upsd_extra)
    cfg.users += users
    dummy_file = root / "dummy.dev"
    if sim:
        cfg.add_ups("sim", driver="nutbridge-sim", port="auto", serial="SIM-42", outlets=str(outlets))
    if dummy_dev is not None:
        dummy_file.write_text(dummy_dev)
        cfg.add_ups("dummy", driver="dummy-ups", port=str(dummy_file), pollinterval="1")
    proc = BridgeProcess.start(cfg)
    bridge = Bridge(cfg, proc, dummy_file)
    try:
        yield bridge
    finally:
        # A test may have restarted it: bridge.proc is then another process.
        codes = [p.stop() for p in (bridge.proc, proc)]
    assert codes == [0, 0], f"bridge exited with {codes}:\n{bridge.proc.log()[-3000:]}"


def make_certificate(path: Path, name: str = "127.0.0.1") -> str:
    """A self-signed certificate and its key in one PEM file (what upsd.conf CERTFILE takes).

    Returns its fingerprint: the SHA-256 of the certificate's DER, 64 lowercase hex digits.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return cert.fingerprint(hashes.SHA256()).hex()


def restart_bridge(bridge: Bridge, upsd_extra: str) -> None:
    """Stop the bridge and start it again on the same port with another upsd.conf tail."""
    assert bridge.proc.stop() == 0, bridge.proc.log()[-3000:]
    bridge.cfg.upsd_extra = upsd_extra
    bridge.proc = BridgeProcess.start(bridge.cfg)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Every test may load custom_components.nut_bridge."""


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """A running ``nutbridge serve``: UPS ``sim`` (nutbridge-sim) and ``dummy`` (dummy-ups)."""
    with running_bridge(tmp_path) as b:
        yield b


@pytest.fixture
def outlet_bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like ``bridge``, the simulated UPS with two switchable outlets."""
    with running_bridge(tmp_path, outlets=2) as b:
        yield b


@pytest.fixture
def bridge_without_push(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like ``bridge`` with ``PUSH false``: SUBSCRIBE is unknown, as in the C upsd."""
    with running_bridge(tmp_path, upsd_extra="PUSH false\n") as b:
        yield b


@pytest.fixture
def slow_polling() -> Iterator[None]:
    """No scheduled poll during the test: only push (or an explicit refresh) updates.

    Under frozen time this also matters: the event loop's clock is frozen too, and a
    tick fires every timer that fell due, including the read timeout of a request still
    on the wire, which would drop the connection. Such tests refresh between ticks.
    """
    with (
        patch("custom_components.nut_bridge.coordinator.UPDATE_INTERVAL", SLOW_POLL),
        patch("custom_components.nut_bridge.coordinator.UPDATE_INTERVAL_ON_BATTERY", SLOW_POLL),
    ):
        yield


@pytest.fixture
def frozen_time(freezer: FrozenDateTimeFactory, slow_polling: None) -> FrozenDateTimeFactory:
    """The clock stands at T0 and moves only with advance(); no scheduled poll meanwhile."""
    freezer.move_to(T0)
    return freezer


async def advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta | float) -> None:
    """Move frozen time on by ``delta`` (a timedelta or seconds) and fire the timers that fell due."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


# ---------------------------------------------------------------- config entries


def bridge_entry(
    server: Server, user: str | None = "admin", password: str = "s3cr3t", *, title: str = "bridge"
) -> MockConfigEntry:
    """A config entry for ``server`` as the user flow would store it (user None: no credentials)."""
    data: dict[str, object] = {CONF_HOST: "127.0.0.1", CONF_PORT: server.port}
    if user is not None:
        data |= {CONF_USERNAME: user, CONF_PASSWORD: password}
    return MockConfigEntry(domain=DOMAIN, title=title, unique_id=f"127.0.0.1:{server.port}", data=data)


async def setup_entry(
    hass: HomeAssistant,
    server: Server,
    user: str | None = "admin",
    password: str = "s3cr3t",
    *,
    title: str = "bridge",
) -> NutBridgeConfigEntry:
    """Add ``bridge_entry(...)`` to Home Assistant and set it up; it must load."""
    entry = bridge_entry(server, user, password, title=title)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry  # type: ignore[return-value]


async def setup_automations(hass: HomeAssistant, *automations: dict[str, Any]) -> None:
    """Set up the automation integration with these automations (each must be accepted)."""
    assert await async_setup_component(hass, "automation", {"automation": list(automations)})
    await hass.async_block_till_done()


def ups_device(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device_by_identifier(ups_identifier(entry, ups), entry.entry_id)
    assert device is not None, ups
    return device


def assert_registered(
    hass: HomeAssistant,
    server: Server,
    entity_id: str,
    *,
    ups: str,
    key: str,
    category: EntityCategory | None = None,
    enabled: bool = True,
) -> er.RegistryEntry:
    """Check the entity registry entry of ``entity_id`` and its device; returns the entry.

    Unique id ``127.0.0.1:<port>_<ups>_<key>`` (the prefix of an entry made by
    bridge_entry), ``category``, enabled or else disabled by the integration (then it
    has no state), and the device of ``ups``: its identifier, manufacturer and model.
    """
    registry_entry = er.async_get(hass).async_get(entity_id)
    assert registry_entry is not None, entity_id
    prefix = f"127.0.0.1:{server.port}"
    assert registry_entry.unique_id == f"{prefix}_{ups}_{key}", entity_id
    assert registry_entry.entity_category == category, entity_id
    if enabled:
        assert registry_entry.disabled_by is None, entity_id
    else:
        assert registry_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION, entity_id
        assert hass.states.get(entity_id) is None, entity_id
    assert registry_entry.device_id is not None, entity_id
    device = dr.async_get(hass).async_get(registry_entry.device_id)
    assert device is not None, entity_id
    assert device.identifiers == {(DOMAIN, f"{prefix}_{ups}")}, entity_id
    assert (device.manufacturer, device.model) == UPS_DEVICES[ups], entity_id
    return registry_entry


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def attributes_of(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return dict(state.attributes)


# ---------------------------------------------------------------- waiting


async def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Until ``check()`` holds, while the event loop runs (push updates, automations).

    Real time only: under frozen time, use refresh_until.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def refresh_until(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, check: Callable[[], bool], what: str, tries: int = 80
) -> None:
    """Refresh the coordinator until ``check()`` holds, at most ``tries`` times, 0.1 s apart.

    Time may be frozen (the event loop's clock and time.monotonic with it): count the
    tries, and sleep in a thread, not in the loop.
    """
    coordinator = entry.runtime_data.coordinator
    for _ in range(tries):
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        if check():
            return
        await hass.async_add_executor_job(time.sleep, 0.1)
    raise AssertionError(f"never: {what}")


async def refresh_until_state(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, entity_id: str, want: str
) -> None:
    """Refresh the coordinator until ``entity_id`` reads ``want``."""
    await refresh_until(hass, entry, lambda: state_of(hass, entity_id) == want, f"{entity_id} reads {want}")


# ---------------------------------------------------------------- the server, as a NUT client


async def instcmd(server: Server, cmd: str, ups: str = "sim") -> None:
    async with NutClient("127.0.0.1", server.port) as client:
        await client.authenticate("admin", "s3cr3t")
        await client.instcmd(ups, cmd)


async def set_var(server: Server, var: str, value: str, ups: str = "sim") -> None:
    async with NutClient("127.0.0.1", server.port) as client:
        await client.authenticate("admin", "s3cr3t")
        await client.set_var(ups, var, value)


async def get_var(server: Server, var: str, ups: str = "sim") -> str:
    async with NutClient("127.0.0.1", server.port) as client:
        return await client.get_var(ups, var)


async def wait_var(
    server: Server, var: str, want: str | Callable[[str], bool], ups: str = "sim", timeout: float = 10.0
) -> str:
    """Until the server's ``var`` equals ``want`` (or passes it, a predicate); its value."""
    check = want if callable(want) else want.__eq__
    deadline = time.monotonic() + timeout
    while not check(value := await get_var(server, var, ups)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{ups} {var} is still {value!r}, wanted {want!r}")
        await asyncio.sleep(0.1)
    return value
