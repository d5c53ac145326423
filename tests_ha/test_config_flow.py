"""Config flow against a real bridge process."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.nut_bridge.const import DOMAIN
from tests.support.realnut import free_port

from .conftest import Bridge

ADMIN = {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"}


def _input(bridge: Bridge, **extra: str) -> dict[str, object]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: bridge.port, **extra}


def _entry(bridge: Bridge) -> MockConfigEntry:
    return MockConfigEntry(domain=DOMAIN, unique_id=f"127.0.0.1:{bridge.port}", data=_input(bridge))


async def test_user_success(hass: HomeAssistant, bridge: Bridge) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(bridge, **ADMIN))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"127.0.0.1:{bridge.port}"
    assert result["data"] == _input(bridge, **ADMIN)
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
    assert result["data"] == _input(bridge)
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
        domain=DOMAIN, unique_id="127.0.0.1:1", data={CONF_HOST: "127.0.0.1", CONF_PORT: 1}
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
    assert entry.unique_id == f"127.0.0.1:{bridge.port}"
    assert entry.data == _input(bridge, **ADMIN)
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
