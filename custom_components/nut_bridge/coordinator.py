"""Polling coordinator: one persistent NUT connection per config entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import override

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from nutbridge.client import NutError, ReconnectingClient

from .const import (
    AUTH_FAILED_CODES,
    CLIENT_TIMEOUT,
    DOMAIN,
    KEY_STATUS,
    UPDATE_INTERVAL,
    UPDATE_INTERVAL_ON_BATTERY,
    UPS_UNAVAILABLE_CODES,
)

_LOGGER = logging.getLogger(__name__)

# A variable name no UPS has: SET VAR on it is refused before anything is changed,
# either with ACCESS-DENIED (credentials refused) or VAR-NOT-SUPPORTED (accepted).
_PROBE_VAR = "nutbridge.credential-probe"


@dataclass
class NutBridgeData:
    """Runtime data of a config entry."""

    coordinator: NutBridgeCoordinator
    # Device-registry id of the NUT server; every UPS device links to it.
    server_device_id: str


type NutBridgeConfigEntry = ConfigEntry[NutBridgeData]


@dataclass
class UpsState:
    """What the last poll learnt about one UPS."""

    name: str
    description: str
    variables: dict[str, str] = field(default_factory=dict)
    # ERR code of the last LIST VAR (e.g. DATA-STALE); None when the data is current.
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None and bool(self.variables)

    @property
    def status_tokens(self) -> frozenset[str]:
        return frozenset(self.variables.get(KEY_STATUS, "").upper().split())


def server_identifier(entry: ConfigEntry) -> tuple[str, str]:
    """Device-registry identifier of the NUT server itself."""
    return (DOMAIN, entry.unique_id or entry.entry_id)


async def async_open_client(
    host: str, port: int, username: str | None, password: str | None
) -> tuple[ReconnectingClient, dict[str, str]]:
    """Connect, authenticate and check the credentials; returns the client and LIST UPS.

    Raises NutError. Refused credentials raise a NutError whose code is in
    AUTH_FAILED_CODES. The caller owns (and must close) the returned client.
    """
    client = ReconnectingClient(host, port, timeout=CLIENT_TIMEOUT)
    try:
        await client.connect()
        if username:
            await client.authenticate(username, password or "")
        ups = await client.list_ups()
        if username and ups:
            await _async_check_credentials(client, next(iter(ups)))
    except BaseException:
        await client.close()
        raise
    return client, ups


async def _async_check_credentials(client: ReconnectingClient, ups: str) -> None:
    """NUT only checks credentials when they are used: try a request that changes nothing.

    A SET VAR of an unknown variable is refused with ACCESS-DENIED before the
    variable is looked up when the user may not SET (or the password is wrong);
    PRIMARY is tried too, for upsmon accounts. Any other answer means accepted.
    """
    try:
        await client.set_var(ups, _PROBE_VAR, "0")
    except NutError as err:
        if err.code not in AUTH_FAILED_CODES:
            return
        denied = err
    else:
        return
    try:
        await client.primary(ups)
    except NutError as err:
        if err.code in AUTH_FAILED_CODES:
            raise denied from err


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

    async def async_close(self) -> None:
        """Log out and close the connection."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _async_client(self) -> ReconnectingClient:
        if self._client is None or not self._client.connected:
            await self.async_close()
            self._client, _ = await async_open_client(
                self.host, self.port, self._username, self._password
            )
        return self._client

    @override
    async def _async_update_data(self) -> dict[str, UpsState]:
        previous = self.data or {}
        try:
            client = await self._async_client()
            listing = await client.list_ups()
            result: dict[str, UpsState] = {}
            for name, description in listing.items():
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
                result[name] = state
        except NutError as err:
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
        return result
