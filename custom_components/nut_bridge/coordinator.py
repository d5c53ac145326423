"""Coordinator: one persistent NUT connection per config entry, plus push where offered.

After the first successful poll the coordinator subscribes to push updates (the
bridge's SUBSCRIBE extension, docs/push.md) on a second connection. The client
library merges the pushed batches (``nutbridge.client.push.UpsStates``): each one
yields the whole state of its UPS, which reaches the entities at once. While push is
active the regular poll only runs LIST UPS (to notice added or removed UPS), with a
full LIST VAR poll every PUSH_FULL_POLL_INTERVAL as a safety net. Servers without
push are polled as before; a dropped push connection falls back to polling and is
retried with backoff. What is decided here is only when to poll and when to listen,
which answer is newer, and what makes a UPS unavailable.

TLS: every connection (poll, push, the actions of services.py) sends STARTTLS first.
An entry with a pinned certificate (entry.data ``tls_sha256``) requires TLS with exactly
that certificate: a server that declines STARTTLS, or shows another certificate, gets no
credentials; the poll fails and a repair issue says why (``tls_unavailable``,
``certificate_changed``; the latter's fix flow lets the user accept the new certificate).
An entry without a pin (set up with a server that had no TLS then) uses TLS whenever the
server offers it and pins the first certificate it sees: from then on the server is one
that "offered TLS before".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from nutbridge.client import (
    CertificateMismatch,
    NutClient,
    NutError,
    ReconnectingClient,
    TLSMode,
    TLSNotOffered,
    TLSOptions,
)
from nutbridge.client.push import PushNotSupported, UpsStates
from nutbridge.client.push import UpsState as PushedState

from .const import (
    AUTH_FAILED_CODES,
    CLIENT_TIMEOUT,
    CONF_TLS_SHA256,
    DOMAIN,
    ISSUE_CERTIFICATE_CHANGED,
    ISSUE_TLS_UNAVAILABLE,
    KEY_STATUS,
    UPDATE_INTERVAL,
    UPDATE_INTERVAL_ON_BATTERY,
    UPS_UNAVAILABLE_CODES,
)
from .controls import UpsControls, async_fetch_controls

_LOGGER = logging.getLogger(__name__)

# A variable name no UPS has: SET VAR on it is refused before anything is changed,
# either with ACCESS-DENIED (credentials refused) or VAR-NOT-SUPPORTED (accepted).
_PROBE_VAR = "nutbridge.credential-probe"

# While push is active: a full LIST VAR poll at least this often (seconds); the
# polls in between only run LIST UPS.
PUSH_FULL_POLL_INTERVAL: Final = 60.0
# Retry delays (seconds) after a dropped or failed push subscription: doubling.
PUSH_RETRY_MIN: Final = 1.0
PUSH_RETRY_MAX: Final = 60.0


@dataclass
class NutBridgeData:
    """Runtime data of a config entry."""

    coordinator: NutBridgeCoordinator
    # Device-registry id of the NUT server; every UPS device links to it.
    server_device_id: str


type NutBridgeConfigEntry = ConfigEntry[NutBridgeData]


@dataclass
class UpsState:
    """What the last poll (or pushed batch) says about one UPS."""

    name: str
    description: str
    # Every current variable: a poll's LIST VAR, or the whole pushed state (read-only).
    variables: Mapping[str, str] = field(default_factory=dict)
    # ERR code of the last LIST VAR, or the pushed STATE (e.g. DATA-STALE); None when current.
    error: str | None = None
    # Commands and writable variables; None until read (when the UPS first shows data).
    controls: UpsControls | None = None

    @property
    def available(self) -> bool:
        return self.error is None and bool(self.variables)

    @property
    def status_tokens(self) -> frozenset[str]:
        return frozenset(self.variables.get(KEY_STATUS, "").upper().split())


# entry.data key: the prefix of the entry's entity unique ids and device identifiers.
CONF_ID_PREFIX: Final = "id_prefix"


def id_prefix(entry: ConfigEntry) -> str:
    """Prefix of the entry's entity unique ids and device identifiers.

    Pinned in entry.data when the entry is created (or before its unique_id first
    changes), so that a new unique_id (zeroconf discovery adopting the entry, a
    reconfigured address) orphans no entity or device. Older entries use their unique_id.
    """
    return str(entry.data.get(CONF_ID_PREFIX) or entry.unique_id or entry.entry_id)


def server_identifier(entry: ConfigEntry) -> tuple[str, str]:
    """Device-registry identifier of the NUT server itself."""
    return (DOMAIN, id_prefix(entry))


def tls_options(pin: str | None) -> TLSOptions:
    """STARTTLS whenever the server offers it.

    With a pin: required, and only with that certificate (the client raises TLSNotOffered
    or CertificateMismatch before anything else is sent). Without: tried, any certificate
    accepted; the caller reads ``peer_fingerprint`` and pins it (trust on first use).
    """
    if pin:
        return TLSOptions(TLSMode.REQUIRE, pin_sha256=pin)
    return TLSOptions(TLSMode.TRY, tofu=True)


def tls_issue_id(kind: str, entry_id: str) -> str:
    """Id of an entry's ``certificate_changed`` / ``tls_unavailable`` issue."""
    return f"{kind}_{entry_id}"


async def async_probe_tls(host: str, port: int) -> str | None:
    """The fingerprint of the server's certificate if it offers STARTTLS, else None.

    Connects without credentials: what to trust is decided before any are sent.
    Raises NutError.
    """
    client = NutClient(host, port, timeout=CLIENT_TIMEOUT, tls=tls_options(None))
    try:
        await client.connect()
        return client.peer_fingerprint
    finally:
        await client.close()


async def async_open_client(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    *,
    pin: str | None = None,
    check_credentials: bool = True,
) -> tuple[ReconnectingClient, dict[str, str]]:
    """Connect (STARTTLS as tls_options(pin) says), authenticate (and check the
    credentials); returns the client and LIST UPS.

    Raises NutError. Refused credentials raise a NutError whose code is in
    AUTH_FAILED_CODES; a pinned server without TLS TLSNotOffered, one with another
    certificate CertificateMismatch. The caller owns (and must close) the returned client.
    """
    client = ReconnectingClient(host, port, timeout=CLIENT_TIMEOUT, tls=tls_options(pin))
    try:
        await client.connect()
        if username:
            await client.authenticate(username, password or "")
        ups = await client.list_ups()
        if check_credentials and username and ups:
            await _async_check_credentials(client, next(iter(ups)))
    except BaseException:
        await client.close()
        raise
    return client, ups


async def _async_check_credentials(client: ReconnectingClient, ups: str) -> None:
    """NUT only checks credentials when they are used: try requests that change nothing.

    A SET VAR of an unknown variable is refused with ACCESS-DENIED before the
    variable is looked up when the user may not SET (or the password is wrong);
    PRIMARY is tried too, for upsmon accounts. Any other answer means accepted.
    (INSTCMD cannot serve as a probe: upsd looks the command up before the user.)
    NUT cannot tell a wrong password from a user without either right, so such a
    user (e.g. one with only a few `instcmds`) is refused here.
    """
    denied: NutError | None = None
    probes: tuple[Callable[[], Awaitable[object]], ...] = (
        lambda: client.set_var(ups, _PROBE_VAR, "0"),
        lambda: client.primary(ups),
    )
    for probe in probes:
        try:
            await probe()
        except NutError as err:
            if err.code not in AUTH_FAILED_CODES:
                return
            denied = denied or err
        else:
            return
    assert denied is not None
    raise denied


class NutBridgeCoordinator(DataUpdateCoordinator[dict[str, UpsState]]):
    """Polls LIST UPS and LIST VAR of every UPS; faster while any UPS is on battery."""

    config_entry: NutBridgeConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        config_entry: NutBridgeConfigEntry,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=config_entry,
            name=f"NUT Bridge {host}:{port}",
            update_interval=UPDATE_INTERVAL,
            always_update=False,
        )
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._client: ReconnectingClient | None = None
        # Push: the subscription task, whether updates are flowing, and the whole
        # state of each UPS as pushed (merged by the client library, kept across
        # subscriptions; each batch replaces its UPS's object, which tells a poll
        # that data was pushed while it ran).
        self._push_task: asyncio.Task[None] | None = None
        self._push_supported = True
        self._push_active = False
        self._pushed = UpsStates()
        self._last_full_poll = 0.0
        # Listeners by the UPS their entity shows (CoordinatorEntity's context) and the
        # others (hub-wide: pruning, power events, repairs): a pushed batch of one UPS
        # calls its own entities and the hub-wide listeners, not every entity of the server.
        self._ups_listeners: dict[str, dict[object, CALLBACK_TYPE]] = {}
        self._hub_listeners: dict[object, CALLBACK_TYPE] = {}

    @override
    @callback
    def async_add_listener(
        self, update_callback: CALLBACK_TYPE, context: object = None
    ) -> Callable[[], None]:
        remove = super().async_add_listener(update_callback, context)
        group = (
            self._ups_listeners.setdefault(context, {})
            if isinstance(context, str)
            else self._hub_listeners
        )
        token = object()
        group[token] = update_callback

        @callback
        def remove_listener() -> None:
            group.pop(token, None)
            remove()

        return remove_listener

    @property
    def push_active(self) -> bool:
        """True while push updates are flowing (polling is then mostly LIST UPS)."""
        return self._push_active

    @override
    async def async_shutdown(self) -> None:
        """Stop the push subscription (the config entry unloads)."""
        await self._async_stop_push()
        await super().async_shutdown()

    async def async_close(self) -> None:
        """Log out and close the connection."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def tls_active(self) -> bool:
        """True while the poll connection runs over TLS."""
        return self._client is not None and self._client.tls_active

    @property
    def pin(self) -> str | None:
        """The pinned certificate fingerprint (None: the server never offered TLS)."""
        pin: str | None = self.config_entry.data.get(CONF_TLS_SHA256)
        return pin

    async def _async_client(self) -> ReconnectingClient:
        if self._client is None or not self._client.connected:
            await self.async_close()
            # Credentials are checked at setup (a refusal starts reauth); after that, a
            # refused action raises a repair issue instead of failing the whole entry.
            self._client, _ = await async_open_client(
                self.host,
                self.port,
                self._username,
                self._password,
                pin=self.pin,
                check_credentials=self.data is None,
            )
            self._async_connected(self._client)
        return self._client

    @callback
    def _async_connected(self, client: ReconnectingClient) -> None:
        """A new connection is up: pin a first certificate, clear the TLS issues."""
        seen = client.peer_fingerprint
        if self.pin is None and seen is not None:
            _LOGGER.info("%s offers TLS; its certificate (SHA-256 %s) is pinned from now on", self.name, seen)
            self.hass.config_entries.async_update_entry(
                self.config_entry, data={**self.config_entry.data, CONF_TLS_SHA256: seen}
            )
            # The client reconnects by itself: from now on only with this certificate.
            client.tls_options = tls_options(seen)
        for kind in (ISSUE_CERTIFICATE_CHANGED, ISSUE_TLS_UNAVAILABLE):
            ir.async_delete_issue(self.hass, DOMAIN, tls_issue_id(kind, self.config_entry.entry_id))

    def _tls_failure(self, err: NutError) -> UpdateFailed | None:
        """A refused TLS connection: raise its repair issue; the poll's error (None: not TLS)."""
        server = f"{self.host}:{self.port}"
        placeholders = {"server": self.config_entry.title, "address": server}
        if isinstance(err, CertificateMismatch):
            self._async_tls_issue(
                ISSUE_CERTIFICATE_CHANGED,
                err,
                {**placeholders, "pinned": self.pin or "", "fingerprint": err.fingerprint},
                fingerprint=err.fingerprint,
            )
            return UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="certificate_changed",
                translation_placeholders={"server": server},
            )
        if isinstance(err, TLSNotOffered):
            self._async_tls_issue(ISSUE_TLS_UNAVAILABLE, err, {**placeholders, "error": err.code})
            return UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="tls_unavailable",
                translation_placeholders={"server": server},
            )
        return None

    def _async_tls_issue(
        self, kind: str, err: NutError, placeholders: dict[str, str], **data: str
    ) -> None:
        issue_id = tls_issue_id(kind, self.config_entry.entry_id)
        # Once per issue, not at every retry.
        log = _LOGGER.debug if ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id) else _LOGGER.warning
        log("%s: refusing to connect (%s); no credentials were sent", self.name, err.text)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            data={"entry_id": self.config_entry.entry_id, **data},
            # A new certificate can be accepted; a server without TLS must be fixed there.
            is_fixable=kind == ISSUE_CERTIFICATE_CHANGED,
            severity=ir.IssueSeverity.ERROR,
            translation_key=kind,
            translation_placeholders=placeholders,
        )

    @override
    async def _async_update_data(self) -> dict[str, UpsState]:
        previous = self.data or {}
        restart_push = False
        try:
            client = await self._async_client()
            listing = await client.list_ups()
            now = time.monotonic()
            # Not `previous`: batches may have been pushed while LIST UPS ran.
            current = self.data or {}
            new_ups = set(listing) - set(current)
            for gone in set(self._pushed) - set(listing):
                # A UPS that comes back starts afresh, as a new one would.
                self._pushed.forget(gone)
            if (
                self._push_active
                and not new_ups
                and now - self._last_full_poll < PUSH_FULL_POLL_INTERVAL
            ):
                # Push keeps the variables current: only follow the list of UPS.
                # The same object when nothing changed: entities skip an unchanged UPS by identity.
                result = {
                    name: current[name]
                    if current[name].description == description
                    else replace(current[name], description=description)
                    for name, description in listing.items()
                }
                await self._async_fetch_missing_controls(client, result)
            else:
                result = await self._async_poll_all(client, listing, previous)
                self._last_full_poll = now
                # "SUBSCRIBE *" covers the UPS that existed when it was sent.
                restart_push = self._push_active and bool(new_ups)
        except NutError as err:
            if (refused := self._tls_failure(err)) is not None:
                await self.async_close()
                raise refused from err
            if err.code in AUTH_FAILED_CODES:
                await self.async_close()
                raise ConfigEntryAuthFailed(
                    translation_domain=DOMAIN,
                    translation_key="auth_failed",
                    translation_placeholders={"error": err.code},
                ) from err
            await self.async_close()
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": str(err)},
            ) from err

        on_battery = any("OB" in s.status_tokens for s in result.values() if s.available)
        self.update_interval = UPDATE_INTERVAL_ON_BATTERY if on_battery else UPDATE_INTERVAL
        if restart_push:
            await self._async_stop_push()
        self._async_start_push()
        return result

    async def _async_poll_all(
        self, client: ReconnectingClient, listing: dict[str, str], previous: dict[str, UpsState]
    ) -> dict[str, UpsState]:
        """LIST VAR of every UPS in the listing."""
        result: dict[str, UpsState] = {}
        for name, description in listing.items():
            pushed = self._pushed.get(name)
            state = UpsState(name, description)
            try:
                state.variables = await client.list_var(name)
            except NutError as err:
                if err.code not in UPS_UNAVAILABLE_CODES:
                    raise
                # Keep the last good values; only this UPS becomes unavailable.
                old = previous.get(name)
                state.variables = dict(old.variables) if old else {}
                state.error = err.code
            old = previous.get(name)
            # Re-read the controls when a UPS (re)appears: a driver may come back different.
            if old is not None and old.available and state.error is None:
                state.controls = old.controls
            result[name] = state
            if self._pushed.get(name) is not pushed and self.data and name in self.data:
                # A batch was pushed while LIST VAR ran: it is newer than the answer.
                result[name] = replace(self.data[name], description=description)
        await self._async_fetch_missing_controls(client, result)
        return result

    async def _async_fetch_missing_controls(
        self, client: ReconnectingClient, result: dict[str, UpsState]
    ) -> None:
        """LIST CMD / LIST RW of UPS that have data but no controls yet."""
        for name, state in list(result.items()):
            if state.controls is None and state.available:
                try:
                    # a new object: the old one may be what the entities last wrote
                    result[name] = replace(state, controls=await async_fetch_controls(client, name))
                except NutError as err:
                    if err.code not in UPS_UNAVAILABLE_CODES:
                        raise
                    _LOGGER.debug("%s: no controls for %s yet: %s", self.name, state.name, err.code)

    # -- push ------------------------------------------------------------------------

    @callback
    def _async_start_push(self) -> None:
        """Subscribe in the background, unless running, or the server has no push."""
        if not self._push_supported or (self._push_task and not self._push_task.done()):
            return
        self._push_task = self.config_entry.async_create_background_task(
            self.hass, self._async_push_loop(), name=f"{self.name} push"
        )

    async def _async_stop_push(self) -> None:
        task, self._push_task = self._push_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) and current.cancelling():
                    raise
        self._push_active = False

    async def _async_push_loop(self) -> None:
        """Subscribe to every UPS; on a dropped connection poll, back off, retry."""
        delay = PUSH_RETRY_MIN
        while True:
            try:
                async for pushed in self._pushed.follow(
                    self.host, self.port, None, timeout=CLIENT_TIMEOUT, tls=tls_options(self.pin)
                ):
                    self._async_apply_push(pushed)
                    delay = PUSH_RETRY_MIN
            except PushNotSupported:
                _LOGGER.debug("%s: no push updates, polling", self.name)
                self._push_supported = False
                self._push_active = False
                return
            except (NutError, OSError, TimeoutError) as err:
                _LOGGER.debug("%s: push subscription failed: %r", self.name, err)
            except Exception:
                _LOGGER.exception("%s: push subscription failed", self.name)
            was_active, self._push_active = self._push_active, False
            if was_active:
                _LOGGER.info("%s: push connection lost, polling until it is back", self.name)
                # Catch up on what was missed now, and the poll timer runs as usual.
                await self.async_refresh()
            await asyncio.sleep(delay)
            delay = min(delay * 2, PUSH_RETRY_MAX)

    @callback
    def _async_apply_push(self, pushed: PushedState) -> None:
        """Hand one UPS's pushed state (after its latest batch) to the entities now."""
        data = dict(self.data or {})
        old = data.get(pushed.ups)
        data[pushed.ups] = UpsState(
            pushed.ups,
            old.description if old else "",
            pushed.variables,
            pushed.error,
            # Controls stay while the UPS stays up; after an outage the next poll re-reads them.
            old.controls if old is not None and old.available and pushed.available else None,
        )
        if not self._push_active:
            _LOGGER.debug("%s: push updates active", self.name)
            self._push_active = True
        if not self.last_update_success or self.data is None:
            # The server was unreachable (entities unavailable): everything changes.
            self.async_set_updated_data(data)
            return
        # One UPS changed: its entities and the hub-wide listeners hear of it. The poll
        # timer runs on (async_set_updated_data would restart it at every batch, and a
        # server pushing more often than the interval would never be polled).
        self.data = data
        for update in list(self._ups_listeners.get(pushed.ups, {}).values()):
            update()
        for update in list(self._hub_listeners.values()):
            update()
