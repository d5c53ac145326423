"""Config flow against a real bridge process (zeroconf: found by real multicast).

The LAN bridge listens beyond loopback, so it makes its own certificate and offers
STARTTLS (docs/tls.md); its advertisement carries the certificate's fingerprint, which the
discovered entry pins. The TLS rules themselves are tested in test_tls.py.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
import pytest_socket
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from homeassistant.components.zeroconf.discovery import ZeroconfDiscovery, info_from_service
from homeassistant.components.zeroconf.models import HaZeroconf
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.loader import async_get_zeroconf
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceInfo

from custom_components.nut_bridge.const import CONF_TLS_SHA256, DOMAIN
from custom_components.nut_bridge.coordinator import CONF_ID_PREFIX
from tests.support.mdns import SERVICE_TYPE, NutBrowser, lan_ipv4
from tests.support.realnut import BridgeProcess, NutConfig, free_port

from .conftest import Bridge

ADMIN = {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"}


def _input(bridge: Bridge, **extra: str) -> dict[str, object]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: bridge.port, **extra}


def _with_prefix(data: dict[str, object]) -> dict[str, object]:
    return {**data, CONF_ID_PREFIX: f"{data[CONF_HOST]}:{data[CONF_PORT]}"}


def _entry(bridge: Bridge) -> MockConfigEntry:
    return MockConfigEntry(domain=DOMAIN, unique_id=f"127.0.0.1:{bridge.port}", data=_input(bridge))


async def test_user_success(hass: HomeAssistant, bridge: Bridge) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge, **ADMIN))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"127.0.0.1:{bridge.port}"
    assert result["data"] == _with_prefix(_input(bridge, **ADMIN))
    assert result["result"].unique_id == f"127.0.0.1:{bridge.port}"
    await hass.async_block_till_done()
    entry = result["result"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_user_anonymous(hass: HomeAssistant, bridge: Bridge) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(bridge, **{CONF_USERNAME: "", CONF_PASSWORD: ""})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == _with_prefix(_input(bridge))
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_user_cannot_connect_then_recover(hass: HomeAssistant, bridge: Bridge) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: free_port()}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_user_invalid_auth(hass: HomeAssistant, bridge: Bridge) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(bridge, **{CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}


async def test_user_already_configured(hass: HomeAssistant, bridge: Bridge) -> None:
    _entry(bridge).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"127.0.0.1:{bridge.port}",
        data=_input(bridge, **{CONF_USERNAME: "admin", CONF_PASSWORD: "old"}),
    )
    entry.add_to_hass(hass)
    # The wrong password is refused at setup, which starts the reauth flow.
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    flow_id = flows[0]["flow_id"]

    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_USERNAME: "admin", CONF_PASSWORD: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, ADMIN)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "s3cr3t"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id="127.0.0.1:1", title="127.0.0.1:1",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: 1},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: free_port()}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge, **ADMIN))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == entry.title == f"127.0.0.1:{bridge.port}"
    # Entities keep the prefix of the unique id the entry had (its old address).
    assert entry.data == {**_input(bridge, **ADMIN), CONF_ID_PREFIX: "127.0.0.1:1"}
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_to_existing_server_aborts(hass: HomeAssistant, bridge: Bridge) -> None:
    _entry(bridge).add_to_hass(hass)
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id="127.0.0.1:1", data={CONF_HOST: "127.0.0.1", CONF_PORT: 1}
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# ---------------------------------------------------------------- zeroconf discovery


@dataclass
class LanBridge:
    """A bridge listening on the host's LAN address too, so it advertises itself."""

    proc: BridgeProcess
    host: str
    state: Path

    @property
    def port(self) -> int:
        return self.proc.cfg.port

    @property
    def server_id(self) -> str:
        return (self.state / "server-id").read_text().strip()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate the bridge made in its state directory."""
        pem = (self.state / "tls" / "nutbridge.pem").read_bytes()  # certificate, then key
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


@pytest.fixture
def lan(socket_enabled: None) -> str:
    """The host's LAN address, which Home Assistant's test plugin lets tests connect to."""
    # Its socket guard allows 127.0.0.1 only; lan_ipv4() asks the route to the mDNS group.
    pytest_socket.socket_allow_hosts(["127.0.0.1", "224.0.0.251"], allow_unix_socket=True)
    host = lan_ipv4()
    pytest_socket.socket_allow_hosts(["127.0.0.1", host], allow_unix_socket=True)
    return host


@pytest.fixture
def lan_bridge(lan: str, tmp_path: Path) -> Iterator[LanBridge]:
    host = lan
    cfg = NutConfig(tmp_path / "lan")
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    cfg.upsd_extra = f"LISTEN {host} {cfg.port}\n"
    state = tmp_path / "state"
    proc = BridgeProcess.start(cfg, ["--state-dir", str(state)])
    try:
        yield LanBridge(proc, host, state)
    finally:
        proc.stop()


@pytest.fixture
async def browser(lan: str) -> AsyncIterator[NutBrowser]:
    async with NutBrowser(lan) as b:
        yield b


async def _advertised(browser: NutBrowser, bridge: LanBridge) -> AsyncServiceInfo:
    return await browser.find(lambda i: i.port == bridge.port)


async def _discovered(browser: NutBrowser, bridge: LanBridge) -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf hands the flow for the bridge's real advertisement."""
    info = info_from_service(await _advertised(browser, bridge))
    assert info is not None
    return info


async def _zeroconf_flow(hass: HomeAssistant, info: ZeroconfServiceInfo) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info)


def _placeholder(result: ConfigFlowResult, key: str) -> str | None:
    placeholders = result.get("description_placeholders")
    assert placeholders is not None
    return placeholders[key]


async def test_zeroconf_discovery_by_home_assistant(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser
) -> None:
    """HA's own zeroconf matcher, fed our manifest, starts the flow for the real advertisement."""
    matchers = [m for m in (await async_get_zeroconf(hass))[SERVICE_TYPE] if m["domain"] == DOMAIN]
    assert matchers == [{"domain": DOMAIN, "properties": {"vendor": "nut-bridge"}}]
    advertised = await _advertised(browser, lan_bridge)
    assert advertised.decoded_properties["id"] == lan_bridge.server_id
    assert advertised.decoded_properties["tls_sha256"] == lan_bridge.fingerprint

    # A plain NUT server on the LAN (no vendor=nut-bridge in TXT) is not ours.
    plain = AsyncServiceInfo(SERVICE_TYPE, f"Plain upsd {lan_bridge.port}.{SERVICE_TYPE}", port=free_port(),
                             addresses=[ip_address(lan_bridge.host).packed], server="plain-upsd.local.")
    await browser.azc.async_register_service(plain)
    await browser.find(lambda i: i.name == plain.name)

    local = AsyncServiceInfo("_home-assistant._tcp.local.", "test._home-assistant._tcp.local.")
    zc: HaZeroconf = browser.azc.zeroconf  # type: ignore[assignment]  # HA's subclass adds nothing used here
    discovery = ZeroconfDiscovery(hass, zc, {SERVICE_TYPE: matchers}, {}, {}, local)
    for name in (plain.name, advertised.name):
        discovery.async_service_update(zc, SERVICE_TYPE, name, ServiceStateChange.Added)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    flow = flows[0]
    assert flow["context"]["source"] == SOURCE_ZEROCONF
    assert flow["step_id"] == "zeroconf_confirm"
    name = advertised.name.removesuffix("." + SERVICE_TYPE)
    assert flow["context"]["title_placeholders"] == {
        "name": name, "host": lan_bridge.host, "port": str(lan_bridge.port)
    }

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == lan_bridge.server_id
    assert entry.title == name
    # The advertised fingerprint is pinned: a STARTTLS entry, no certificate question.
    assert entry.data == {CONF_HOST: lan_bridge.host, CONF_PORT: lan_bridge.port,
                          CONF_TLS_SHA256: lan_bridge.fingerprint, CONF_ID_PREFIX: lan_bridge.server_id}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.tls_active
    assert hass.states.get("binary_sensor.sim_online").state == "on"  # type: ignore[union-attr]

    # The advertisement is the same bridge: nothing new is offered.
    result = await _zeroconf_flow(hass, await _discovered(browser, lan_bridge))
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert entry.data[CONF_HOST] == lan_bridge.host
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_zeroconf_moved_bridge_follows(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser
) -> None:
    """An entry for the bridge's id at an old address is updated and reloaded."""
    info = await _discovered(browser, lan_bridge)
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=lan_bridge.server_id, title="UPS room",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: free_port(), CONF_ID_PREFIX: lan_bridge.server_id},
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY

    result = await _zeroconf_flow(hass, info)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert entry.data == {CONF_HOST: lan_bridge.host, CONF_PORT: lan_bridge.port,
                          CONF_ID_PREFIX: lan_bridge.server_id}
    assert entry.title == "UPS room"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED  # type: ignore[comparison-overlap]  # reloaded
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_zeroconf_known_by_mdns_name_keeps_host(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser
) -> None:
    info = await _discovered(browser, lan_bridge)
    mdns_name = info.hostname.rstrip(".")
    entry = MockConfigEntry(domain=DOMAIN, unique_id=lan_bridge.server_id,
                            data={CONF_HOST: mdns_name, CONF_PORT: lan_bridge.port})
    entry.add_to_hass(hass)
    result = await _zeroconf_flow(hass, info)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert entry.data[CONF_HOST] == mdns_name


async def test_zeroconf_adopts_user_entry(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser
) -> None:
    """An entry set up by hand at the advertised address gets the stable id; its entities stay."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: lan_bridge.host, CONF_PORT: lan_bridge.port}
    )
    assert result["step_id"] == "certificate"  # typed by hand: trust on first use
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.data[CONF_TLS_SHA256] == lan_bridge.fingerprint
    address = f"{lan_bridge.host}:{lan_bridge.port}"
    assert entry.unique_id == address
    registry = er.async_get(hass)
    before = {e.unique_id: e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert "binary_sensor.sim_online" in before.values()
    assert all(uid.startswith(f"{address}_") for uid in before)
    states = set(hass.states.async_entity_ids())

    result = await _zeroconf_flow(hass, await _discovered(browser, lan_bridge))
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    assert entry.unique_id == lan_bridge.server_id
    assert entry.data[CONF_ID_PREFIX] == address

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = {e.unique_id: e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert after == before
    assert hass.states.get("binary_sensor.sim_online").state == "on"  # type: ignore[union-attr]
    assert set(hass.states.async_entity_ids()) == states

    # Set up by hand again at that address: the discovered entry is found by host and port.
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: lan_bridge.host, CONF_PORT: lan_bridge.port}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_zeroconf_adopts_entry_by_dns_name(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name that resolves to an advertised address is the same server; others are not."""
    # The test plugin refuses DNS look-ups; this test needs the resolver's real answers.
    monkeypatch.setattr(socket, "getaddrinfo", pytest_socket._true_getaddrinfo)
    real = await _discovered(browser, lan_bridge)
    # Here the advertisement also carries ::1, what "localhost" resolves to.
    info = replace(real, ip_addresses=[*real.ip_addresses, IPv6Address("::1")])
    others = [
        MockConfigEntry(domain=DOMAIN, unique_id=uid, data={CONF_HOST: host, CONF_PORT: port})
        for uid, host, port in [
            ("a", "nosuch.invalid", lan_bridge.port),  # does not resolve
            ("b", "192.0.2.254", lan_bridge.port),  # another address
            ("c", lan_bridge.host, 1),  # another port
        ]
    ]
    for other in others:
        other.add_to_hass(hass)
    result = await _zeroconf_flow(hass, real)
    assert result["step_id"] == "zeroconf_confirm"  # nothing adopted
    hass.config_entries.flow.async_abort(result["flow_id"])

    mine = MockConfigEntry(domain=DOMAIN, unique_id="d",
                           data={CONF_HOST: "localhost", CONF_PORT: lan_bridge.port})
    mine.add_to_hass(hass)
    result = await _zeroconf_flow(hass, info)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert mine.unique_id == lan_bridge.server_id
    assert mine.data == {CONF_HOST: "localhost", CONF_PORT: lan_bridge.port, CONF_ID_PREFIX: "d"}
    assert [o.unique_id for o in others] == ["a", "b", "c"]


async def test_zeroconf_confirm_errors_and_credentials(
    hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser
) -> None:
    info = await _discovered(browser, lan_bridge)
    result = await _zeroconf_flow(hass, info)
    assert result["type"] is FlowResultType.FORM
    name = info.name.removesuffix("." + SERVICE_TYPE)
    assert result["description_placeholders"] == {
        "name": name, "host": lan_bridge.host, "port": str(lan_bridge.port)
    }
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, ADMIN)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    pin = {CONF_TLS_SHA256: lan_bridge.fingerprint}
    assert result["data"] == {CONF_HOST: lan_bridge.host, CONF_PORT: lan_bridge.port, **ADMIN, **pin,
                              CONF_ID_PREFIX: lan_bridge.server_id}
    await hass.async_block_till_done()
    entry = result["result"]
    assert await hass.config_entries.async_unload(entry.entry_id)

    # Reconfigured to another address (here: the same bridge over loopback), a
    # discovered entry keeps its server id, its title and its entities' prefix (and
    # its pin: the same certificate answers there, so nothing is asked).
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: lan_bridge.port, **ADMIN}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == lan_bridge.server_id
    assert entry.title == name
    assert entry.data == {CONF_HOST: "127.0.0.1", CONF_PORT: lan_bridge.port, **ADMIN, **pin,
                          CONF_ID_PREFIX: lan_bridge.server_id}
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_zeroconf_confirm_cannot_connect(hass: HomeAssistant, lan: str) -> None:
    info = _info(lan, port=free_port())  # nothing listens there
    result = await _zeroconf_flow(hass, info)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


def _info(*addresses: str, port: int = 3493, **properties: str) -> ZeroconfServiceInfo:
    ips: list[IPv4Address | IPv6Address] = [ip_address(a) for a in addresses or ("127.0.0.2", "192.0.2.7")]
    props = {"vendor": "nut-bridge", "id": "0123456789abcdef0123456789abcdef", **properties}
    return ZeroconfServiceInfo(ip_address=ips[0], ip_addresses=ips, port=port, hostname="box.local.",
                               type=SERVICE_TYPE, name=f"NUT Bridge on box.{SERVICE_TYPE}",
                               properties={k: v for k, v in props.items() if v})


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (_info(id=""), "not_nut_bridge"),  # e.g. a plain upsd advertised by avahi
        (_info(vendor=""), "not_nut_bridge"),
        (_info("fe80::1", "169.254.3.4", "127.0.0.1"), "no_routable_address"),
    ],
)
async def test_zeroconf_not_offered(hass: HomeAssistant, info: ZeroconfServiceInfo, reason: str) -> None:
    result = await _zeroconf_flow(hass, info)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, reason)


async def test_zeroconf_prefers_routable_ipv4(hass: HomeAssistant) -> None:
    result = await _zeroconf_flow(hass, _info("fd00::7", "fe80::1", "192.0.2.7"))
    assert _placeholder(result, "host") == "192.0.2.7"
    result = await _zeroconf_flow(hass, _info("fe80::1", "fd00::7", id="fedcba9876543210fedcba9876543210"))
    assert _placeholder(result, "host") == "fd00::7"


async def test_zeroconf_tls(hass: HomeAssistant, lan_bridge: LanBridge, browser: NutBrowser) -> None:
    """A fingerprint in TXT that is not the server's: refused before any credential. No
    fingerprint in TXT (an older bridge) while the server offers TLS: the certificate step."""
    real = await _discovered(browser, lan_bridge)
    wrong = replace(real, properties={**real.properties, "tls_sha256": "00" * 32})
    result = await _zeroconf_flow(hass, wrong)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ADMIN)
    assert (result["step_id"], result["errors"]) == ("zeroconf_confirm", {"base": "certificate_mismatch"})
    hass.config_entries.flow.async_abort(result["flow_id"])

    bare = replace(real, properties={k: v for k, v in real.properties.items() if k != "tls_sha256"})
    result = await _zeroconf_flow(hass, bare)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ADMIN)
    assert result["step_id"] == "certificate"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TLS_SHA256] == lan_bridge.fingerprint
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)
