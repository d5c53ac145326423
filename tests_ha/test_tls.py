"""TLS between Home Assistant and NUT Bridge: STARTTLS, pinning, trust on first use, repairs,
and the Supervisor (hassio) discovery that hands the integration a pinned certificate.

Every test runs a real ``nutbridge serve`` whose upsd.conf CERTFILE is a certificate the test
makes. Where it matters what went over the wire, Home Assistant talks to the bridge through a
RecordingProxy, which keeps every byte the server received from each connection: credentials
in clear would show there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_HASSIO,
    SOURCE_USER,
    ConfigEntryDisabler,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.nut_bridge.const import CONF_TLS_SHA256, DOMAIN
from custom_components.nut_bridge.coordinator import CONF_ID_PREFIX, NutBridgeConfigEntry
from custom_components.nut_bridge.diagnostics import async_get_config_entry_diagnostics
from custom_components.nut_bridge.repairs import CertificateRepairFlow, async_create_fix_flow
from tests.support.realnut import free_port

from .conftest import (
    Bridge,
    make_certificate,
    refresh_until,
    restart_bridge,
    running_bridge,
    state_of,
    wait_for,
)
from .integration_files import strings_json

ADMIN = {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"}
SERVER_ID = "0123456789abcdef0123456789abcdef"


def readable(fingerprint: str) -> str:
    """How the certificate step shows a fingerprint: AB:CD:..."""
    return ":".join(re.findall("..", fingerprint)).upper()


@dataclass
class TlsBridge:
    """A bridge offering STARTTLS with ``pem`` (CERTFILE), whose fingerprint is ``fingerprint``."""

    bridge: Bridge
    pem: Path
    fingerprint: str

    @property
    def port(self) -> int:
        return self.bridge.port


@pytest.fixture
def tls_bridge(socket_enabled: None, tmp_path: Path, slow_polling: None) -> Iterator[TlsBridge]:
    pem = tmp_path / "cert-a.pem"
    fingerprint = make_certificate(pem)
    with running_bridge(tmp_path / "tls", dummy_dev=None, upsd_extra=f"CERTFILE {pem}\n") as bridge:
        yield TlsBridge(bridge, pem, fingerprint)


class RecordingProxy:
    """Forwards 127.0.0.1:<port> to the bridge; ``received[i]`` is every byte the bridge
    got from the i-th connection (in the event loop: no thread outlives the test)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.received: list[bytearray] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def everything(self) -> bytes:
        return b"".join(self.received)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = bytearray()
        self.received.append(record)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray | None) -> None:
            try:
                while data := await src.read(65536):
                    if keep is not None:
                        keep += data
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, record), pump(up_reader, writer, None))


@pytest.fixture
async def proxy(tls_bridge: TlsBridge) -> AsyncIterator[RecordingProxy]:
    p = RecordingProxy(tls_bridge.port)
    await p.start()
    yield p
    await p.close()


def assert_only_tls(proxy: RecordingProxy) -> None:
    """Every connection began with STARTTLS; no credential or request ever went in clear."""
    assert proxy.received
    for record in proxy.received:
        assert record.startswith(b"STARTTLS\n"), bytes(record[:40])
    everything = proxy.everything()
    for clear in (b"s3cr3t", b"USERNAME", b"PASSWORD", b"LIST ", b"SUBSCRIBE"):
        assert clear not in everything, clear


def pinned_entry(port: int, fingerprint: str | None, **extra: Any) -> MockConfigEntry:
    data: dict[str, Any] = {CONF_HOST: "127.0.0.1", CONF_PORT: port, **ADMIN, **extra}
    if fingerprint is not None:
        data[CONF_TLS_SHA256] = fingerprint
    return MockConfigEntry(domain=DOMAIN, title="bridge", unique_id=SERVER_ID, data=data)


async def setup_tls_entry(hass: HomeAssistant, entry: MockConfigEntry) -> NutBridgeConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry  # type: ignore[return-value]


def issue(registry: ir.IssueRegistry, kind: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return registry.async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


# ---------------------------------------------------------------- manual entry: trust on first use


async def test_user_flow_shows_the_fingerprint_and_pins_it(
    hass: HomeAssistant, tls_bridge: TlsBridge, proxy: RecordingProxy
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    typed = {CONF_HOST: "127.0.0.1", CONF_PORT: proxy.port, CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], typed)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "certificate"
    assert result["description_placeholders"] == {
        "host": "127.0.0.1",
        "port": str(proxy.port),
        "fingerprint": readable(tls_bridge.fingerprint),
    }
    # Until the user accepts the certificate, the server was only asked for STARTTLS.
    assert b"wrong" not in proxy.everything()
    assert len(proxy.received) == 1 and proxy.received[0].startswith(b"STARTTLS\n")

    # Accepted: the credentials go out (over TLS with that certificate) and are refused.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert (result["step_id"], result["errors"]) == ("user", {"base": "invalid_auth"})
    # Corrected: the certificate this flow accepted is not asked about again.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**typed, **ADMIN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    address = f"127.0.0.1:{proxy.port}"
    assert result["data"] == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: proxy.port,
        **ADMIN,
        CONF_TLS_SHA256: tls_bridge.fingerprint,
        CONF_ID_PREFIX: address,
    }
    await hass.async_block_till_done()
    entry: NutBridgeConfigEntry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.tls_active
    assert state_of(hass, "binary_sensor.sim_online") == "on"
    await wait_for("push over TLS", lambda: entry.runtime_data.coordinator.push_active)
    assert_only_tls(proxy)

    # Diagnostics: the password stays hidden; the fingerprint is public and shown.
    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert diag["entry"]["data"][CONF_PASSWORD] == "**REDACTED**"
    assert diag["entry"]["data"][CONF_TLS_SHA256] == tls_bridge.fingerprint
    assert diag["tls_active"] is True
    assert "s3cr3t" not in repr(diag)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entry_without_pin_pins_the_first_certificate(
    hass: HomeAssistant, tls_bridge: TlsBridge, tmp_path: Path, issue_registry: ir.IssueRegistry
) -> None:
    """An entry made when the server had no TLS: it uses TLS once offered, and from then on
    requires that certificate."""
    entry = await setup_tls_entry(hass, pinned_entry(tls_bridge.port, None))
    assert entry.data[CONF_TLS_SHA256] == tls_bridge.fingerprint
    assert entry.runtime_data.coordinator.tls_active

    other = make_certificate(tmp_path / "cert-b.pem")
    restart_bridge(tls_bridge.bridge, f"CERTFILE {tmp_path / 'cert-b.pem'}\n")
    await refresh_until(
        hass, entry, lambda: issue(issue_registry, "certificate_changed", entry) is not None, "refused"
    )
    found = issue(issue_registry, "certificate_changed", entry)
    assert found is not None and found.translation_placeholders is not None
    assert found.translation_placeholders["fingerprint"] == other
    assert entry.data[CONF_TLS_SHA256] == tls_bridge.fingerprint
    assert await hass.config_entries.async_unload(entry.entry_id)


# ---------------------------------------------------------------- Supervisor discovery


def hassio_info(port: int, fingerprint: str, /, **changes: Any) -> HassioServiceInfo:
    """What HA core hands the flow for the app's POST /discovery (it adds ``addon``)."""
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "username": "admin",
        "password": "s3cr3t",
        "tls_sha256": fingerprint,
        "id": SERVER_ID,
        "addon": "NUT Bridge",
    }
    config.update(changes)
    return HassioServiceInfo(config=config, name="NUT Bridge", slug="local_nut_bridge", uuid="4d1a7e3c")


async def hassio_flow(hass: HomeAssistant, info: HassioServiceInfo) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_HASSIO}, data=info)


async def test_hassio_discovery_creates_a_pinned_tls_entry(
    hass: HomeAssistant, tls_bridge: TlsBridge, proxy: RecordingProxy
) -> None:
    result = await hassio_flow(hass, hassio_info(proxy.port, tls_bridge.fingerprint))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "NUT Bridge"}
    assert result["data_schema"] is not None and result["data_schema"].schema == {}  # nothing to type
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flows[0]["context"]["title_placeholders"] == {
        "name": "NUT Bridge", "host": "127.0.0.1", "port": str(proxy.port)
    }

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "NUT Bridge"
    entry: NutBridgeConfigEntry = result["result"]
    assert entry.unique_id == SERVER_ID
    assert dict(entry.data) == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: proxy.port,
        **ADMIN,
        CONF_TLS_SHA256: tls_bridge.fingerprint,
        CONF_ID_PREFIX: SERVER_ID,
    }
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.tls_active
    assert state_of(hass, "binary_sensor.sim_online") == "on"
    await wait_for("push over TLS", lambda: entry.runtime_data.coordinator.push_active)
    # A command (its own connection, with the password) also goes over pinned TLS.
    await hass.services.async_call(
        DOMAIN,
        "run_command",
        {"config_entry_id": entry.entry_id, "ups": "sim", "command": "test.failure.start"},
        blocking=True,
    )
    await refresh_until(hass, entry, lambda: state_of(hass, "binary_sensor.sim_on_battery") == "on", "OB")
    assert_only_tls(proxy)

    # The Supervisor replays its messages at every start: nothing new is offered.
    result = await hassio_flow(hass, hassio_info(proxy.port, tls_bridge.fingerprint))
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_hassio_updates_a_known_bridge(hass: HomeAssistant, tls_bridge: TlsBridge) -> None:
    """The app's address, credentials and certificate changed: the entry takes them and reloads."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="UPS room",
        unique_id=SERVER_ID,
        data={
            CONF_HOST: "127.0.0.1",
            CONF_PORT: free_port(),
            CONF_USERNAME: "old",
            CONF_PASSWORD: "old",
            CONF_TLS_SHA256: "ab" * 32,
            CONF_ID_PREFIX: SERVER_ID,
        },
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY

    result = await hassio_flow(hass, hassio_info(tls_bridge.port, tls_bridge.fingerprint.upper()))
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert dict(entry.data) == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: tls_bridge.port,
        **ADMIN,
        CONF_TLS_SHA256: tls_bridge.fingerprint,
        CONF_ID_PREFIX: SERVER_ID,
    }
    assert entry.title == "UPS room"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED  # type: ignore[comparison-overlap]  # reloaded
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_hassio_adopts_an_entry_made_by_hand(hass: HomeAssistant, tls_bridge: TlsBridge) -> None:
    address = f"127.0.0.1:{tls_bridge.port}"
    # (disabled: setting up the integration for ``mine`` would otherwise try it too)
    elsewhere = MockConfigEntry(domain=DOMAIN, unique_id="192.0.2.1:3493",
                                disabled_by=ConfigEntryDisabler.USER,
                                data={CONF_HOST: "192.0.2.1", CONF_PORT: 3493})
    elsewhere.add_to_hass(hass)
    mine = MockConfigEntry(domain=DOMAIN, unique_id=address, title=address,
                           data={CONF_HOST: "127.0.0.1", CONF_PORT: tls_bridge.port})
    mine.add_to_hass(hass)
    result = await hassio_flow(hass, hassio_info(tls_bridge.port, tls_bridge.fingerprint))
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert mine.unique_id == SERVER_ID
    assert dict(mine.data) == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: tls_bridge.port,
        **ADMIN,
        CONF_TLS_SHA256: tls_bridge.fingerprint,
        CONF_ID_PREFIX: address,  # its entities keep their ids
    }
    assert elsewhere.unique_id == "192.0.2.1:3493"
    await hass.async_block_till_done()
    assert mine.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(mine.entry_id)


@pytest.mark.parametrize(
    "changes",
    [{"id": None}, {"id": ""}, {"port": "x"}, {"port": 0}, {"host": " "}],
    ids=["no-id", "empty-id", "port-not-a-number", "port-zero", "blank-host"],
)
async def test_hassio_incomplete_message(hass: HomeAssistant, changes: dict[str, Any]) -> None:
    info = hassio_info(3493, "ab" * 32, **changes)
    info.config = {k: v for k, v in info.config.items() if v is not None}
    result = await hassio_flow(hass, info)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "invalid_discovery_info")


async def test_hassio_confirm_errors(hass: HomeAssistant, tls_bridge: TlsBridge) -> None:
    """A wrong pin or password shows on the confirmation form; nothing is created."""
    for changes, error in [
        ({"tls_sha256": "00" * 32}, "certificate_mismatch"),
        ({"password": "wrong"}, "invalid_auth"),
        ({"port": free_port()}, "cannot_connect"),
    ]:
        result = await hassio_flow(hass, hassio_info(tls_bridge.port, tls_bridge.fingerprint, **changes))
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        assert result["type"] is FlowResultType.FORM
        assert (result["step_id"], result["errors"]) == ("hassio_confirm", {"base": error})
        hass.config_entries.flow.async_abort(result["flow_id"])
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_hassio_without_fingerprint_asks_about_the_certificate(
    hass: HomeAssistant, tls_bridge: TlsBridge
) -> None:
    """``tls_sha256`` empty (or malformed) but the server offers TLS: trust on first use."""
    result = await hassio_flow(hass, hassio_info(tls_bridge.port, "not-a-fingerprint"))
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "certificate"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TLS_SHA256] == tls_bridge.fingerprint
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_hassio_pin_for_a_server_without_tls(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None
) -> None:
    result = await hassio_flow(hass, hassio_info(bridge.port, "ab" * 32))
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert (result["step_id"], result["errors"]) == ("hassio_confirm", {"base": "tls_not_offered"})


# ---------------------------------------------------------------- a pinned entry whose server changed


async def test_changed_certificate_is_refused_until_the_user_accepts_it(
    hass: HomeAssistant,
    tls_bridge: TlsBridge,
    proxy: RecordingProxy,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    entry = await setup_tls_entry(hass, pinned_entry(proxy.port, tls_bridge.fingerprint))
    assert entry.runtime_data.coordinator.tls_active

    other_pem = tmp_path / "cert-b.pem"
    other = make_certificate(other_pem)
    restart_bridge(tls_bridge.bridge, f"CERTFILE {other_pem}\n")
    await refresh_until(
        hass, entry, lambda: issue(issue_registry, "certificate_changed", entry) is not None, "issue"
    )
    coordinator = entry.runtime_data.coordinator
    assert not coordinator.last_update_success
    assert state_of(hass, "binary_sensor.sim_online") == "unavailable"
    found = issue(issue_registry, "certificate_changed", entry)
    assert found is not None
    assert found.is_fixable and found.severity is ir.IssueSeverity.ERROR
    assert found.data == {"entry_id": entry.entry_id, "fingerprint": other}
    assert found.translation_placeholders == {
        "server": "bridge",
        "address": f"127.0.0.1:{proxy.port}",
        "pinned": tls_bridge.fingerprint,
        "fingerprint": other,
    }
    assert_only_tls(proxy)

    # "Keep refusing": nothing changes.
    flow = await start_fix_flow(hass, found.issue_id)
    menu = await flow.async_step_init()
    assert menu["type"] is FlowResultType.MENU
    assert menu["menu_options"] == ["accept", "refuse"]
    assert menu["description_placeholders"] == found.translation_placeholders
    result = await flow.async_step_refuse()
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "refused")
    assert issue(issue_registry, "certificate_changed", entry) is not None
    assert entry.data[CONF_TLS_SHA256] == tls_bridge.fingerprint

    # "Trust the new certificate": pinned, the entry reloads and connects.
    flow = await start_fix_flow(hass, found.issue_id)
    result = await flow.async_step_accept()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.data[CONF_TLS_SHA256] == other
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.tls_active
    assert state_of(hass, "binary_sensor.sim_online") == "on"
    assert issue(issue_registry, "certificate_changed", entry) is None
    assert_only_tls(proxy)

    # Removing the entry takes a pending TLS issue along.
    restart_bridge(tls_bridge.bridge, f"CERTFILE {tls_bridge.pem}\n")
    await refresh_until(
        hass, entry, lambda: issue(issue_registry, "certificate_changed", entry) is not None, "again"
    )
    assert await hass.config_entries.async_remove(entry.entry_id)
    assert issue(issue_registry, "certificate_changed", entry) is None


async def start_fix_flow(hass: HomeAssistant, issue_id: str) -> CertificateRepairFlow:
    found = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert found is not None
    flow = await async_create_fix_flow(hass, issue_id, found.data)
    assert isinstance(flow, CertificateRepairFlow)
    flow.hass = hass
    flow.handler = DOMAIN
    flow.issue_id = issue_id
    flow.flow_id = "fix"
    return flow


async def test_fix_flow_for_an_entry_that_is_gone(hass: HomeAssistant) -> None:
    flow = CertificateRepairFlow("gone", "ab" * 32)
    flow.hass = hass
    for step in (flow.async_step_init, flow.async_step_accept):
        result = await step()
        assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "entry_removed")


async def test_no_password_in_clear_to_a_server_that_offered_tls(
    hass: HomeAssistant, tls_bridge: TlsBridge, proxy: RecordingProxy, issue_registry: ir.IssueRegistry
) -> None:
    """The server comes back without TLS: the entry only ever sends STARTTLS to it, raises
    an issue, and connects again once TLS is back."""
    entry = await setup_tls_entry(hass, pinned_entry(proxy.port, tls_bridge.fingerprint))
    await wait_for("push over TLS", lambda: entry.runtime_data.coordinator.push_active)
    before = len(proxy.received)

    restart_bridge(tls_bridge.bridge, "")
    await refresh_until(
        hass, entry, lambda: issue(issue_registry, "tls_unavailable", entry) is not None, "issue"
    )
    found = issue(issue_registry, "tls_unavailable", entry)
    assert found is not None and not found.is_fixable
    assert found.translation_placeholders == {
        "server": "bridge",
        "address": f"127.0.0.1:{proxy.port}",
        "error": "FEATURE-NOT-CONFIGURED",
    }
    assert state_of(hass, "binary_sensor.sim_online") == "unavailable"
    # What the TLS-less server received from Home Assistant: STARTTLS, and nothing else.
    after = [bytes(r) for r in proxy.received[before:]]
    assert after and all(r == b"STARTTLS\n" for r in after), after
    assert_only_tls(proxy)

    restart_bridge(tls_bridge.bridge, f"CERTFILE {tls_bridge.pem}\n")
    await refresh_until(
        hass, entry, lambda: issue(issue_registry, "tls_unavailable", entry) is None, "TLS back"
    )
    assert state_of(hass, "binary_sensor.sim_online") == "on"
    assert entry.runtime_data.coordinator.tls_active
    assert await hass.config_entries.async_unload(entry.entry_id)


# ---------------------------------------------------------------- reauth and reconfigure keep the pin


async def test_reauth_and_reconfigure_with_tls(
    hass: HomeAssistant, tls_bridge: TlsBridge, proxy: RecordingProxy, bridge: Bridge
) -> None:
    """Reauth of a pinned entry validates over pinned TLS; reauth of an entry without pin
    asks about the certificate first; reconfigure to the same certificate asks nothing, to
    a server without TLS drops the pin (the user typed the password for it)."""
    entry = pinned_entry(tls_bridge.port, None, password="old")
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ADMIN)
    assert result["step_id"] == "certificate"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reauth_successful")
    assert entry.data[CONF_TLS_SHA256] == tls_bridge.fingerprint
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Pinned now: a new password goes only to that certificate, without asking.
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ADMIN)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reauth_successful")
    await hass.async_block_till_done()

    # The same server at another address (through the proxy): same certificate, no question.
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: proxy.port, **ADMIN}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reconfigure_successful")
    assert entry.data[CONF_TLS_SHA256] == tls_bridge.fingerprint
    await hass.async_block_till_done()

    # Another server, without TLS: the pin goes.
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: bridge.port, **ADMIN}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reconfigure_successful")
    assert CONF_TLS_SHA256 not in entry.data
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert not entry.runtime_data.coordinator.tls_active  # type: ignore[attr-defined]
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_tls_strings() -> None:
    """The TLS texts exist and use only the placeholders the code fills in."""
    strings = strings_json()
    config = strings["config"]
    assert set(re.findall(r"{(\w+)}", config["step"]["certificate"]["description"])) == {
        "host", "port", "fingerprint"
    }
    assert set(re.findall(r"{(\w+)}", config["step"]["hassio_confirm"]["description"])) == {"addon"}
    assert {"certificate_mismatch", "tls_not_offered"} <= set(config["error"])
    issues = strings["issues"]
    changed = issues["certificate_changed"]
    assert "description" not in changed  # fixable: the fix flow explains
    init = changed["fix_flow"]["step"]["init"]
    assert set(init["menu_options"]) == {"accept", "refuse"}
    for text in (changed["title"], init["title"], init["description"]):
        assert set(re.findall(r"{(\w+)}", text)) <= {"server", "address", "pinned", "fingerprint"}, text
    assert set(changed["fix_flow"]["abort"]) == {"refused", "entry_removed"}
    unavailable = issues["tls_unavailable"]
    for text in (unavailable["title"], unavailable["description"]):
        assert set(re.findall(r"{(\w+)}", text)) <= {"server", "address", "error"}, text
    for key in ("certificate_changed", "tls_unavailable"):
        assert set(re.findall(r"{(\w+)}", strings["exceptions"][key]["message"])) == {"server"}
