"""Repair issues against a real bridge: RB, a UPS without data, refused commands and their fix."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.nut_bridge import repairs
from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from custom_components.nut_bridge.repairs import (
    STALE_AFTER,
    async_clear_access_denied,
    async_create_fix_flow,
    async_report_access_denied,
)
from tests.support.realnut import BridgeProcess

from .conftest import DUMMY_DEV, Bridge, advance, refresh_until, running_bridge, set_var, setup_entry


@pytest.fixture
def operator_bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """UPS ``sim`` and a user ``operator`` who may SET and run test.battery.stop, nothing else."""
    users = "[operator]\n    password = op\n    actions = SET\n    instcmds = test.battery.stop\n"
    with running_bridge(tmp_path, dummy_dev=None, users=users) as b:
        yield b


def _issue(
    issues: ir.IssueRegistry, kind: str, entry: NutBridgeConfigEntry, ups: str | None = None
) -> ir.IssueEntry | None:
    suffix = f"_{ups}" if ups else ""
    return issues.async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}{suffix}")


# -- replace battery -------------------------------------------------------------------


async def test_replace_battery_follows_rb(
    hass: HomeAssistant, bridge: Bridge, issue_registry: ir.IssueRegistry
) -> None:
    entry = await setup_entry(hass, bridge)
    assert _issue(issue_registry, "replace_battery", entry, "dummy") is None

    bridge.dummy_file.write_text(DUMMY_DEV.replace("ups.status: OL", "ups.status: OL RB"))
    await refresh_until(
        hass, entry, lambda: _issue(issue_registry, "replace_battery", entry, "dummy") is not None, "RB issue"
    )
    issue = _issue(issue_registry, "replace_battery", entry, "dummy")
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_key == "replace_battery"
    assert not issue.is_fixable
    assert issue.translation_placeholders == {
        "ups": "dummy",
        "model": "Dummy Corp File UPS",
        "server": "bridge",
    }
    assert _issue(issue_registry, "replace_battery", entry, "sim") is None

    bridge.dummy_file.write_text(DUMMY_DEV)
    await refresh_until(
        hass, entry, lambda: _issue(issue_registry, "replace_battery", entry, "dummy") is None, "RB cleared"
    )

    # The simulated UPS flags RB once its battery health drops below 50 %.
    await set_var(bridge, "experimental.sim.battery.health", "40")
    await refresh_until(
        hass, entry, lambda: _issue(issue_registry, "replace_battery", entry, "sim") is not None, "RB on sim"
    )
    # Unloading the entry takes its issues along; a setup raises what still holds.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _issue(issue_registry, "replace_battery", entry, "sim") is None
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _issue(issue_registry, "replace_battery", entry, "sim") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


# -- no current data -------------------------------------------------------------------


async def test_data_stale_after_threshold(
    hass: HomeAssistant,
    bridge_without_push: Bridge,
    issue_registry: ir.IssueRegistry,
    frozen_time: FrozenDateTimeFactory,
) -> None:
    bridge = bridge_without_push  # no push, no scheduled poll: nothing updates by itself
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    assert not coordinator.push_active

    bridge.dummy_file.unlink()
    await refresh_until(hass, entry, lambda: coordinator.data["dummy"].error is not None, "dummy stale")
    error = coordinator.data["dummy"].error
    assert error in ("DATA-STALE", "DRIVER-NOT-CONNECTED")

    await advance(hass, frozen_time, STALE_AFTER / 2)
    assert _issue(issue_registry, "data_stale", entry, "dummy") is None
    # No further update arrives (nothing is polled): the timer alone raises the issue.
    await advance(hass, frozen_time, STALE_AFTER / 2 + timedelta(seconds=1))
    issue = _issue(issue_registry, "data_stale", entry, "dummy")
    assert issue is not None
    assert issue.translation_key == "data_stale"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "ups": "dummy",
        "server": "bridge",
        "error": error,
        "minutes": str(int(STALE_AFTER.total_seconds() // 60)),
    }
    assert _issue(issue_registry, "data_stale", entry, "sim") is None

    bridge.dummy_file.write_text(DUMMY_DEV)
    await refresh_until(
        hass, entry, lambda: _issue(issue_registry, "data_stale", entry, "dummy") is None, "stale cleared"
    )
    assert coordinator.data["dummy"].available

    # A short outage, shorter than the threshold, raises nothing.
    bridge.dummy_file.unlink()
    await refresh_until(hass, entry, lambda: not coordinator.data["dummy"].available, "dummy stale again")
    await advance(hass, frozen_time, STALE_AFTER / 2)
    bridge.dummy_file.write_text(DUMMY_DEV)
    await refresh_until(hass, entry, lambda: coordinator.data["dummy"].available, "dummy back")
    await advance(hass, frozen_time, STALE_AFTER)
    assert _issue(issue_registry, "data_stale", entry, "dummy") is None

    # Unloading cancels a pending timer.
    bridge.dummy_file.unlink()
    await refresh_until(hass, entry, lambda: not coordinator.data["dummy"].available, "dummy stale 3")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await advance(hass, frozen_time, STALE_AFTER * 2)
    assert _issue(issue_registry, "data_stale", entry, "dummy") is None


async def test_data_stale_server_down_and_ups_removed(
    hass: HomeAssistant, bridge: Bridge, issue_registry: ir.IssueRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real time here: a dropped connection is retried with asyncio.sleep.
    monkeypatch.setattr(repairs, "STALE_AFTER", timedelta(seconds=0.3))
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator

    bridge.proc.stop()
    await refresh_until(
        hass,
        entry,
        lambda: all(_issue(issue_registry, "data_stale", entry, ups) is not None for ups in ("sim", "dummy")),
        "stale issues while the server is down",
    )
    assert not coordinator.last_update_success
    issue = _issue(issue_registry, "data_stale", entry, "sim")
    assert issue is not None and issue.translation_placeholders is not None
    assert issue.translation_placeholders["error"]

    # The server comes back without the dummy UPS: sim recovers, dummy is not listed.
    del bridge.cfg.ups["dummy"]
    bridge.proc = BridgeProcess.start(bridge.cfg)

    def settled() -> bool:
        dummy = _issue(issue_registry, "data_stale", entry, "dummy")
        return (
            _issue(issue_registry, "data_stale", entry, "sim") is None
            and dummy is not None
            and dummy.translation_placeholders is not None
            and dummy.translation_placeholders["error"] == "UNKNOWN-UPS"
        )

    await refresh_until(hass, entry, settled, "sim back, dummy gone")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _issue(issue_registry, "data_stale", entry, "dummy") is None


# -- refused commands ------------------------------------------------------------------


async def _run_command(hass: HomeAssistant, command: str) -> None:
    await hass.services.async_call(
        DOMAIN,
        "run_command",
        {"config_entry_id": _entry_id(hass), "ups": "sim", "command": command},
        blocking=True,
    )


async def _refused(hass: HomeAssistant, command: str) -> None:
    """The server refuses the command: access denied (which raises the permission issue)."""
    with pytest.raises(HomeAssistantError) as err:
        await _run_command(hass, command)
    assert err.value.translation_key == "access_denied"


def _entry_id(hass: HomeAssistant) -> str:
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    return entry.entry_id


async def test_refused_command_raises_permission_issue_until_one_succeeds(
    hass: HomeAssistant, operator_bridge: Bridge, issue_registry: ir.IssueRegistry
) -> None:
    entry = await setup_entry(hass, operator_bridge, user="operator", password="op")
    await _refused(hass, "test.battery.start.quick")
    issue = _issue(issue_registry, "insufficient_permissions", entry)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["user"] == "operator"
    assert issue.translation_placeholders["permission"] == "instcmds = test.battery.start.quick"

    # A command the user may run goes through and drops the issue.
    await _run_command(hass, "test.battery.stop")
    assert _issue(issue_registry, "insufficient_permissions", entry) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_permission_issue_and_fix_flow(
    hass: HomeAssistant,
    bridge: Bridge,
    issue_registry: ir.IssueRegistry,
    hass_client: ClientSessionGenerator,
) -> None:
    # An upsmon account logs in, but the server refuses its commands.
    entry = await setup_entry(hass, bridge, user="monprimary", password="mp")
    await _refused(hass, "test.battery.start.quick")
    async_report_access_denied(hass, entry, "sim", "test.battery.start.quick")

    issue = _issue(issue_registry, "insufficient_permissions", entry)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == "insufficient_permissions"
    assert issue.data == {"entry_id": entry.entry_id}
    assert issue.translation_placeholders == {
        "server": "bridge",
        "ups": "sim",
        "user": "monprimary",
        "action": "INSTCMD test.battery.start.quick",
        "permission": "instcmds = test.battery.start.quick",
    }
    # The latest refusal is what the issue describes.
    async_report_access_denied(hass, entry, "sim", "SET VAR ups.delay.shutdown")
    issue = _issue(issue_registry, "insufficient_permissions", entry)
    assert issue is not None and issue.translation_placeholders is not None
    assert issue.translation_placeholders["action"] == "SET VAR ups.delay.shutdown"
    assert issue.translation_placeholders["permission"] == "actions = SET"

    # The fix flow, as the frontend runs it: a confirmation, then the entry's reauth.
    assert await async_setup_component(hass, "repairs", {})
    client = await hass_client()
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue.issue_id}
    )
    assert resp.status == HTTPStatus.OK
    form = await resp.json()
    assert form["type"] == FlowResultType.FORM
    assert form["step_id"] == "confirm"
    assert form["description_placeholders"]["user"] == "monprimary"
    resp = await client.post(f"/api/repairs/issues/fix/{form['flow_id']}", json={})
    assert resp.status == HTTPStatus.OK
    done = await resp.json()
    assert done["type"] == FlowResultType.ABORT
    assert done["reason"] == "reauth_started"
    flow_type, reauth_id = done["next_flow"]
    assert flow_type == "config_flow"
    reauth = hass.config_entries.flow.async_get(reauth_id)
    assert reauth["context"]["source"] == SOURCE_REAUTH
    assert reauth["context"]["entry_id"] == entry.entry_id
    assert reauth["step_id"] == "reauth_confirm"
    # Until better credentials are in, the issue stays.
    assert _issue(issue_registry, "insufficient_permissions", entry) is not None

    # Fixing again while that reauth is open reuses it.
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue.issue_id}
    )
    resp = await client.post(f"/api/repairs/issues/fix/{(await resp.json())['flow_id']}", json={})
    assert (await resp.json())["next_flow"] == ["config_flow", reauth_id]

    result = await hass.config_entries.flow.async_configure(
        reauth_id, {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_USERNAME] == "admin"
    # The entry reloaded with the new credentials: the issue is gone, commands go through.
    assert _issue(issue_registry, "insufficient_permissions", entry) is None
    await _run_command(hass, "test.battery.start.quick")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_missing_credentials_and_clear(
    hass: HomeAssistant, bridge: Bridge, issue_registry: ir.IssueRegistry
) -> None:
    entry = await setup_entry(hass, bridge, user=None)
    await _refused(hass, "test.battery.start.quick")
    async_report_access_denied(hass, entry, "sim", "FSD")
    issue = _issue(issue_registry, "insufficient_permissions", entry)
    assert issue is not None
    assert issue.translation_key == "missing_credentials"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["permission"] == "actions = FSD"
    assert issue.translation_placeholders["action"] == "FSD"

    # A later successful action drops it.
    async_clear_access_denied(hass, entry)
    assert _issue(issue_registry, "insufficient_permissions", entry) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_fix_flow_for_an_entry_that_is_gone(hass: HomeAssistant) -> None:
    flow = await async_create_fix_flow(hass, "insufficient_permissions_x", {"entry_id": "gone"})
    flow.hass = hass
    flow.context = {"issue_id": "insufficient_permissions_x"}
    result = await flow.async_step_init()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


def test_issue_strings() -> None:
    """Every issue has its texts, and they only use placeholders the code fills in."""
    strings = json.loads((Path(repairs.__file__).parent / "strings.json").read_text())
    issues = strings["issues"]
    filled = {
        "replace_battery": {"ups", "model", "server"},
        "data_stale": {"ups", "server", "error", "minutes"},
        "insufficient_permissions": {"server", "ups", "user", "action", "permission"},
        "missing_credentials": {"server", "ups", "user", "action", "permission"},
    }
    for key, placeholders in filled.items():
        texts = [issues[key]["title"]]
        if key in ("insufficient_permissions", "missing_credentials"):
            # Fixable: hassfest wants a fix_flow instead of a description.
            assert "description" not in issues[key]
            step = issues[key]["fix_flow"]["step"]["confirm"]
            texts += [step["title"], step["description"]]
            aborts = set(issues[key]["fix_flow"]["abort"])
            assert aborts == {"reauth_started", "reauth_failed", "entry_not_loaded"}
        else:
            texts.append(issues[key]["description"])
        for text in texts:
            assert set(re.findall(r"{(\w+)}", text)) <= placeholders, (key, text)
    assert {"estimated_power", "energy"} <= set(strings["entity"]["sensor"])
