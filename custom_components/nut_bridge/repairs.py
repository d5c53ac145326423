"""Repair issues: battery to replace, UPS without current data, credentials lacking a permission.

* ``replace_battery`` (per UPS): raised while ``ups.status`` has RB, deleted when
  the flag clears. While the UPS is unavailable the last verdict stands.
* ``data_stale`` (per UPS): raised once a UPS the entry has seen has had no current
  data for STALE_AFTER (its driver answers DATA-STALE / DRIVER-NOT-CONNECTED, the
  server no longer lists it, or the server does not answer); deleted when data is
  back. A timer raises it even when no further update arrives.
* ``insufficient_permissions`` / ``missing_credentials`` (per entry): raised by
  services.py when the server refuses a command, SET VAR or FSD with the entry's
  credentials; fixable (the fix flow opens the entry's re-authentication), deleted
  when an action later succeeds.
* ``certificate_changed`` / ``tls_unavailable`` (per entry): raised by the coordinator
  when the server of an entry with a pinned certificate shows another certificate, or
  no longer offers STARTTLS; no credential is sent then. Deleted once a connection with
  the pinned certificate succeeds (or the entry is removed), not when the entry
  unloads: they are what keeps it from loading. The fix flow of ``certificate_changed``
  lets the user accept the new certificate (pinned, the entry reloads) or keep refusing.

The other issues of an entry are deleted when it unloads (a reload after new
credentials included); a setup re-raises whatever still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import probatio as vol
from homeassistant.components.repairs import RepairsFlow
from homeassistant.components.repairs.const import FlowType
from homeassistant.components.repairs.models import RepairsFlowResult
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_RECONFIGURE, ConfigEntryState
from homeassistant.const import CONF_USERNAME
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from .const import (
    CONF_TLS_SHA256,
    DOMAIN,
    ISSUE_CERTIFICATE_CHANGED,
    ISSUE_TLS_UNAVAILABLE,
    KEY_MFR,
    KEY_MODEL,
)
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, tls_issue_id

# How long a UPS may go without current data before the data_stale issue.
STALE_AFTER: Final = timedelta(minutes=10)

ISSUE_REPLACE_BATTERY: Final = "replace_battery"
ISSUE_DATA_STALE: Final = "data_stale"
ISSUE_PERMISSIONS: Final = "insufficient_permissions"
ISSUE_CREDENTIALS: Final = "missing_credentials"

# ``what`` of async_report_access_denied for the two upsd.users "actions".
ACTION_FSD: Final = "FSD"
ACTION_SET_PREFIX: Final = "SET VAR"

# Reason for a UPS that the server no longer lists (upsd's own code for it).
_NOT_LISTED: Final = "UNKNOWN-UPS"


def _ups_issue_id(kind: str, entry_id: str, ups: str) -> str:
    return f"{kind}_{entry_id}_{ups}"


def _permission_issue_id(entry_id: str) -> str:
    return f"{ISSUE_PERMISSIONS}_{entry_id}"


class _RepairWatcher:
    """Follows one entry's coordinator and keeps its per-UPS issues current."""

    def __init__(self, hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator: NutBridgeCoordinator = entry.runtime_data.coordinator
        # Every UPS seen since setup; one that vanishes from the listing is stale.
        self.known: set[str] = set()
        # UPS without current data -> since when; and the timer raising the issue.
        self.stale_since: dict[str, datetime] = {}
        self.timers: dict[str, CALLBACK_TYPE] = {}
        self.issues: set[str] = set()

    @callback
    def async_evaluate(self) -> None:
        """Compare every UPS with the issue conditions (a coordinator listener)."""
        data = self.coordinator.data or {}
        self.known.update(data)
        now = dt_util.utcnow()
        for ups in sorted(self.known):
            self._check_stale(ups, now)
            self._check_battery(ups)

    def _unavailable_reason(self, ups: str) -> str | None:
        if not self.coordinator.last_update_success:
            return str(self.coordinator.last_exception or "") or "no answer from the server"
        state = (self.coordinator.data or {}).get(ups)
        if state is None:
            return _NOT_LISTED
        if state.error is not None:
            return state.error
        return None if state.variables else "no data"

    def _check_stale(self, ups: str, now: datetime) -> None:
        issue_id = _ups_issue_id(ISSUE_DATA_STALE, self.entry.entry_id, ups)
        reason = self._unavailable_reason(ups)
        if reason is None:
            self.stale_since.pop(ups, None)
            if cancel := self.timers.pop(ups, None):
                cancel()
            self._delete(issue_id)
            return
        since = self.stale_since.setdefault(ups, now)
        if now - since >= STALE_AFTER:
            self._create(
                issue_id,
                ISSUE_DATA_STALE,
                ups=ups,
                server=self.entry.title,
                error=reason,
                minutes=str(int(STALE_AFTER.total_seconds() // 60)),
            )
        elif ups not in self.timers:
            self.timers[ups] = async_call_later(
                self.hass, STALE_AFTER - (now - since), self._async_timer(ups)
            )

    def _async_timer(self, ups: str) -> Callable[[datetime], None]:
        @callback
        def _fire(_now: datetime) -> None:
            self.timers.pop(ups, None)
            self.async_evaluate()

        return _fire

    def _check_battery(self, ups: str) -> None:
        state = (self.coordinator.data or {}).get(ups)
        if state is None or not state.available or not self.coordinator.last_update_success:
            return  # unknown: the last verdict stands
        issue_id = _ups_issue_id(ISSUE_REPLACE_BATTERY, self.entry.entry_id, ups)
        if "RB" not in state.status_tokens:
            self._delete(issue_id)
            return
        model = " ".join(
            v for v in (state.variables.get(KEY_MFR), state.variables.get(KEY_MODEL)) if v
        )
        self._create(
            issue_id,
            ISSUE_REPLACE_BATTERY,
            severity=ir.IssueSeverity.WARNING,
            ups=ups,
            model=model or ups,
            server=self.entry.title,
        )

    def _create(
        self,
        issue_id: str,
        translation_key: str,
        severity: ir.IssueSeverity = ir.IssueSeverity.ERROR,
        **placeholders: str,
    ) -> None:
        self.issues.add(issue_id)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=severity,
            translation_key=translation_key,
            translation_placeholders=placeholders,
        )

    def _delete(self, issue_id: str) -> None:
        if issue_id in self.issues:
            self.issues.discard(issue_id)
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)

    @callback
    def async_unload(self) -> None:
        for cancel in self.timers.values():
            cancel()
        self.timers.clear()
        for issue_id in list(self.issues):
            self._delete(issue_id)
        async_clear_access_denied(self.hass, self.entry)


@callback
def async_setup_repairs(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """Start watching this entry's UPS for conditions that need the user."""
    watcher = _RepairWatcher(hass, entry)
    watcher.async_evaluate()
    entry.async_on_unload(entry.runtime_data.coordinator.async_add_listener(watcher.async_evaluate))
    entry.async_on_unload(watcher.async_unload)


def _permission(what: str) -> tuple[str, str]:
    """(the refused action, the upsd.users line that allows it) for a ``what``."""
    if what == ACTION_FSD:
        return "FSD", "actions = FSD"
    if what.startswith(ACTION_SET_PREFIX):
        return what, "actions = SET"
    return f"INSTCMD {what}", f"instcmds = {what}"


@callback
def async_report_access_denied(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, what: str
) -> None:
    """The server refused an action with the entry's credentials (ACCESS-DENIED & co).

    ``what``: the instant command's name, ``"SET VAR <variable>"``, or ``"FSD"``.
    """
    action, permission = _permission(what)
    user: str | None = entry.data.get(CONF_USERNAME)
    ir.async_create_issue(
        hass,
        DOMAIN,
        _permission_issue_id(entry.entry_id),
        data={"entry_id": entry.entry_id},
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_PERMISSIONS if user else ISSUE_CREDENTIALS,
        translation_placeholders={
            "server": entry.title,
            "ups": ups,
            "user": user or "",
            "action": action,
            "permission": permission,
        },
    )


@callback
def async_clear_access_denied(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """An action went through (or the entry unloads): drop the permission issue."""
    ir.async_delete_issue(hass, DOMAIN, _permission_issue_id(entry.entry_id))


class CredentialsRepairFlow(RepairsFlow):
    """Explains the missing permission, then opens the entry's re-authentication."""

    def __init__(self, entry_id: str) -> None:
        self._entry_id = entry_id

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        entry: NutBridgeConfigEntry | None = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        if user_input is None:
            issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
            return self.async_show_form(
                step_id="confirm",
                data_schema=vol.Schema({}),
                description_placeholders=issue.translation_placeholders if issue else None,
            )
        # Reuse a re-authentication or reconfiguration the user already started.
        active = entry.async_get_active_flows(self.hass, {SOURCE_REAUTH, SOURCE_RECONFIGURE})
        flow_id = next((flow["flow_id"] for flow in active), None)
        if flow_id is None:
            result = await self.hass.config_entries.flow.async_init(
                DOMAIN,
                context={
                    "source": SOURCE_REAUTH,
                    "entry_id": entry.entry_id,
                    "title_placeholders": {"name": entry.title},
                    "unique_id": entry.unique_id,
                },
                data=dict(entry.data),
            )
            if result["type"] is not FlowResultType.FORM:
                return self.async_abort(reason="reauth_failed")
            flow_id = result["flow_id"]
        # Abort, not create_entry: the issue stays until the new credentials are in.
        return self.async_abort(reason="reauth_started", next_flow=(FlowType.CONFIG_FLOW, flow_id))


class CertificateRepairFlow(RepairsFlow):
    """The server shows another certificate: accept (pin) it, or keep refusing."""

    def __init__(self, entry_id: str, fingerprint: str) -> None:
        self._entry_id = entry_id
        self._fingerprint = fingerprint

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        if self.hass.config_entries.async_get_entry(self._entry_id) is None:
            return self.async_abort(reason="entry_removed")
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return self.async_show_menu(
            step_id="init",
            menu_options=["accept", "refuse"],
            description_placeholders=issue.translation_placeholders if issue else None,
        )

    async def async_step_accept(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Pin the certificate the issue showed (not whatever the server shows now)."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_TLS_SHA256: self._fingerprint}
        )
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_create_entry(data={})

    async def async_step_refuse(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Nothing changes: the entry keeps refusing the certificate (the issue stays)."""
        return self.async_abort(reason="refused")


@callback
def async_clear_tls_issues(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is removed: its TLS issues go with it."""
    for kind in (ISSUE_CERTIFICATE_CHANGED, ISSUE_TLS_UNAVAILABLE):
        ir.async_delete_issue(hass, DOMAIN, tls_issue_id(kind, entry_id))


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of a fixable issue: a changed certificate, or a refused permission."""
    data = data or {}
    entry_id = str(data.get("entry_id", ""))
    if issue_id == tls_issue_id(ISSUE_CERTIFICATE_CHANGED, entry_id):
        return CertificateRepairFlow(entry_id, str(data.get("fingerprint", "")))
    return CredentialsRepairFlow(entry_id)
