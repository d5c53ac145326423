"""Config flow: user, zeroconf and Supervisor (hassio) discovery, reauth and reconfigure steps.

Unique ids: an entry set up by hand is keyed by ``host:port``; a discovered bridge by
the stable server id it advertises (TXT ``id``, docs/discovery.md), so a bridge that
moved to another address is recognised and the entry follows it. A discovered bridge
that an entry already reaches (same address and port) adopts that entry: it gets the
server id as unique id. Entity and device ids do not change with the unique id: their
prefix is pinned in the entry data (coordinator.id_prefix).

Supervisor discovery: the NUT Bridge app posts host, port, credentials, its server id
and its certificate fingerprint (docs: deploy.md, service ``nut_bridge``); the user only
confirms. The Supervisor is a trusted channel, so a known bridge takes the posted
address, credentials and certificate as they are.

TLS: a fingerprint that came with the discovery (zeroconf TXT ``tls_sha256``, the
Supervisor's ``tls_sha256``) is pinned as it is. Otherwise the server is asked without
credentials whether it offers STARTTLS; if it does, its certificate's fingerprint is
shown for the user to accept (trust on first use) before any credential is sent, and
pinned. From then on the entry requires TLS with that certificate (coordinator.py).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from nutbridge.client import CertificateMismatch, NutError, TLSNotOffered

from .const import AUTH_FAILED_CODES, CONF_TLS_SHA256, DEFAULT_HOST, DEFAULT_PORT, DOMAIN
from .coordinator import CONF_ID_PREFIX, async_open_client, async_probe_tls, id_prefix

_LOGGER = logging.getLogger(__name__)


def _server_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, DEFAULT_HOST)): str,
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=65535)
            ),
            vol.Optional(CONF_USERNAME, default=defaults.get(CONF_USERNAME, "")): str,
            vol.Optional(CONF_PASSWORD, default=""): str,
        }
    )


_AUTH_SCHEMA = vol.Schema(
    {vol.Required(CONF_USERNAME): str, vol.Required(CONF_PASSWORD): str}
)

_OPTIONAL_AUTH_SCHEMA = vol.Schema(
    {vol.Optional(CONF_USERNAME, default=""): str, vol.Optional(CONF_PASSWORD, default=""): str}
)

# TXT of the bridge's advertisement; plain NUT servers are left to HA's core nut integration.
TXT_VENDOR = "nut-bridge"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def _pin(value: object) -> str | None:
    """A discovered fingerprint (64 hex digits, ':' allowed), normalised; None if absent or malformed."""
    text = str(value or "").replace(":", "").strip().lower()
    return text if _FINGERPRINT.fullmatch(text) else None


def _readable(fingerprint: str) -> str:
    """``AB:CD:...``, as browsers and ``openssl x509 -fingerprint`` show it."""
    return ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _routable_host(info: ZeroconfServiceInfo) -> str | None:
    """The address to connect to: IPv4 first (stable, and what people type), never a
    link-local one (useless without its interface) nor loopback (another machine's)."""
    usable = [
        ip
        for ip in (info.ip_address, *info.ip_addresses)
        if not (ip.is_link_local or ip.is_loopback or ip.is_unspecified)
    ]
    usable.sort(key=lambda ip: ip.version)  # stable: HA's most-recent-first order otherwise
    return str(usable[0]) if usable else None


async def _async_reaches(hass: HomeAssistant, data: Mapping[str, Any], info: ZeroconfServiceInfo) -> bool:
    """Does this entry data's host:port point at the discovered service?

    The host may be one of the advertised addresses, the mDNS host name, or a DNS
    name that resolves to one of the addresses.
    """
    host = data.get(CONF_HOST)
    if not isinstance(host, str) or data.get(CONF_PORT) != (info.port or DEFAULT_PORT):
        return False
    addresses = {info.ip_address, *info.ip_addresses}
    if (ip := _ip(host)) is not None:
        return ip in addresses
    if host.rstrip(".").lower() == info.hostname.rstrip(".").lower():
        return True
    try:
        resolved = await hass.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(_ip(str(sockaddr[0])) in addresses for *_, sockaddr in resolved)


async def _async_validate(data: Mapping[str, Any]) -> dict[str, str]:
    """Try the server with these settings; returns the form errors (empty when fine)."""
    try:
        client, _ = await async_open_client(
            data[CONF_HOST],
            data[CONF_PORT],
            data.get(CONF_USERNAME) or None,
            data.get(CONF_PASSWORD),
            pin=data.get(CONF_TLS_SHA256),
        )
    except NutError as err:
        if isinstance(err, CertificateMismatch):
            return {"base": "certificate_mismatch"}
        if isinstance(err, TLSNotOffered):
            return {"base": "tls_not_offered"}
        if err.code in AUTH_FAILED_CODES:
            return {"base": "invalid_auth"}
        _LOGGER.debug("Cannot connect to %s:%s: %s", data[CONF_HOST], data[CONF_PORT], err)
        return {"base": "cannot_connect"}
    await client.close()
    return {}


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data: empty credentials are not stored."""
    return {k: v for k, v in data.items() if v not in ("", None)}


def _address(data: Mapping[str, Any]) -> str:
    """``host:port``: unique id and title of an entry set up by hand."""
    return f"{data.get(CONF_HOST)}:{data.get(CONF_PORT)}"


# What finishes a flow with validated connection data, and what shows its form again with errors.
_Finish = Callable[[dict[str, Any]], ConfigFlowResult]
_Retry = Callable[[dict[str, str]], ConfigFlowResult]


class NutBridgeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one NUT server (all its UPS) per entry."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}
        self._name = ""
        # Certificate confirmation: the connection data waiting for it, what to do after.
        self._pending: dict[str, Any] = {}
        self._finish: _Finish | None = None
        self._retry: _Retry | None = None
        # host:port -> fingerprint the user accepted (or the entry had pinned) in this flow.
        self._trusted: dict[str, str] = {}

    # -- connecting: certificate first, then credentials --------------------------

    async def _async_connect(
        self, data: dict[str, Any], finish: _Finish, retry: _Retry
    ) -> ConfigFlowResult:
        """Check ``data`` against the server, then ``finish(data)`` (or ``retry(errors)``).

        Without a pin, the server is first asked (anonymously) whether it offers TLS;
        a certificate not trusted yet goes to the certificate step, and no credential
        is sent before the user accepts it. Validation then runs over pinned TLS.
        """
        if not data.get(CONF_TLS_SHA256):
            try:
                seen = await async_probe_tls(data[CONF_HOST], data[CONF_PORT])
            except NutError as err:
                _LOGGER.debug("Cannot connect to %s: %s", _address(data), err)
                return retry({"base": "cannot_connect"})
            if seen is not None:
                data = {**data, CONF_TLS_SHA256: seen}
                if self._trusted.get(_address(data)) != seen:
                    self._pending, self._finish, self._retry = data, finish, retry
                    return await self.async_step_certificate()
        errors = await _async_validate(data)
        return retry(errors) if errors else finish(data)

    async def async_step_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the fingerprint of a server's certificate; Submit trusts (and pins) it."""
        data = self._pending
        if user_input is None:
            return self.async_show_form(
                step_id="certificate",
                data_schema=vol.Schema({}),
                description_placeholders={
                    "host": str(data[CONF_HOST]),
                    "port": str(data[CONF_PORT]),
                    "fingerprint": _readable(data[CONF_TLS_SHA256]),
                },
            )
        assert self._finish is not None and self._retry is not None
        self._trusted[_address(data)] = data[CONF_TLS_SHA256]
        return await self._async_connect(data, self._finish, self._retry)

    # -- user ---------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is None:
            return self._user_form(None, {})
        # Also catches a discovered entry (keyed by server id) at this address.
        self._async_abort_entries_match(
            {CONF_HOST: user_input[CONF_HOST], CONF_PORT: user_input[CONF_PORT]}
        )
        unique_id = _address(user_input)
        await self.async_set_unique_id(unique_id)
        self._abort_if_unique_id_configured()
        return await self._async_connect(
            _clean(user_input),
            lambda data: self.async_create_entry(
                title=unique_id, data={**data, CONF_ID_PREFIX: unique_id}
            ),
            lambda errors: self._user_form(user_input, errors),
        )

    def _user_form(self, user_input: dict[str, Any] | None, errors: dict[str, str]) -> ConfigFlowResult:
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_server_schema({}), user_input or {}),
            errors=errors,
        )

    # -- discovery ----------------------------------------------------------------

    def _create_discovered(self, data: dict[str, Any]) -> ConfigFlowResult:
        assert self.unique_id is not None
        return self.async_create_entry(
            title=self._name, data={**_clean(data), CONF_ID_PREFIX: self.unique_id}
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A NUT Bridge advertised itself (manifest: ``_nut._tcp.local.`` with vendor=nut-bridge)."""
        server_id = discovery_info.properties.get("id")
        if discovery_info.properties.get("vendor") != TXT_VENDOR or not server_id:
            return self.async_abort(reason="not_nut_bridge")
        host = _routable_host(discovery_info)
        if host is None:
            return self.async_abort(reason="no_routable_address")
        port = discovery_info.port or DEFAULT_PORT
        server_id = str(server_id).strip().lower()

        # Known bridge: follow it to its new address (and reload), unless the entry's
        # host (e.g. a DNS name) still reaches it. Its pin stays: anyone on the LAN can
        # advertise, only the certificate proves the server.
        if (entry := await self.async_set_unique_id(server_id)) is not None:
            same = await _async_reaches(self.hass, entry.data, discovery_info)
            self._abort_if_unique_id_configured(
                updates=None if same else {CONF_HOST: host, CONF_PORT: port}
            )
        # An entry set up by hand for this server: adopt it rather than offer a duplicate.
        for other in self._async_current_entries(include_ignore=False):
            if await _async_reaches(self.hass, other.data, discovery_info):
                self._async_adopt(other, server_id)
                return self.async_abort(reason="already_configured")

        self._discovered = {CONF_HOST: host, CONF_PORT: port}
        if pin := _pin(discovery_info.properties.get("tls_sha256")):
            self._discovered[CONF_TLS_SHA256] = pin
        self._name = discovery_info.name.removesuffix("." + discovery_info.type) or _address(
            self._discovered
        )
        self.context["title_placeholders"] = {"name": self._name, "host": host, "port": str(port)}
        return await self.async_step_zeroconf_confirm()

    def _async_adopt(self, entry: ConfigEntry, server_id: str, **updates: Any) -> None:
        # Pin the entity-id prefix first: it defaults to the unique id being replaced.
        self.hass.config_entries.async_update_entry(
            entry,
            unique_id=server_id,
            data={**entry.data, **updates, CONF_ID_PREFIX: id_prefix(entry)},
        )

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        if user_input is None:
            return self._zeroconf_form(None, {})
        return await self._async_connect(
            {**self._discovered, **user_input},
            self._create_discovered,
            lambda errors: self._zeroconf_form(user_input, errors),
        )

    def _zeroconf_form(
        self, user_input: dict[str, Any] | None, errors: dict[str, str]
    ) -> ConfigFlowResult:
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=self.add_suggested_values_to_schema(
                _OPTIONAL_AUTH_SCHEMA, {CONF_USERNAME: (user_input or {}).get(CONF_USERNAME, "")}
            ),
            description_placeholders={
                "name": self._name,
                "host": self._discovered[CONF_HOST],
                "port": str(self._discovered[CONF_PORT]),
            },
            errors=errors,
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The NUT Bridge app announced itself to the Supervisor (service ``nut_bridge``)."""
        config = discovery_info.config
        try:
            server_id = str(config["id"]).strip().lower()
            host = str(config["host"]).strip()
            port = int(config["port"])
        except (KeyError, TypeError, ValueError):
            return self.async_abort(reason="invalid_discovery_info")
        if not server_id or not host or not 0 < port < 65536:
            return self.async_abort(reason="invalid_discovery_info")
        data = _clean(
            {
                CONF_HOST: host,
                CONF_PORT: port,
                CONF_USERNAME: config.get("username"),
                CONF_PASSWORD: config.get("password"),
                CONF_TLS_SHA256: _pin(config.get("tls_sha256")),
            }
        )
        # A known bridge takes what the Supervisor says (address, credentials, certificate).
        await self.async_set_unique_id(server_id)
        self._abort_if_unique_id_configured(updates=data)
        # An entry set up by hand at the app's address: adopt it.
        for other in self._async_current_entries(include_ignore=False):
            if (other.data.get(CONF_HOST), other.data.get(CONF_PORT)) == (host, port):
                self._async_adopt(other, server_id, **data)
                self.hass.config_entries.async_schedule_reload(other.entry_id)
                return self.async_abort(reason="already_configured")

        self._discovered = data
        self._name = str(config.get("addon") or discovery_info.name or "NUT Bridge")
        self.context["title_placeholders"] = {"name": self._name, "host": host, "port": str(port)}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        if user_input is None:
            return self._hassio_form({})
        return await self._async_connect(self._discovered, self._create_discovered, self._hassio_form)

    def _hassio_form(self, errors: dict[str, str]) -> ConfigFlowResult:
        return self.async_show_form(
            step_id="hassio_confirm",
            data_schema=vol.Schema({}),
            description_placeholders={"addon": self._name},
            errors=errors,
        )

    # -- reauth, reconfigure ------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()

        def form(errors: dict[str, str]) -> ConfigFlowResult:
            return self.async_show_form(
                step_id="reauth_confirm",
                data_schema=self.add_suggested_values_to_schema(
                    _AUTH_SCHEMA, {CONF_USERNAME: entry.data.get(CONF_USERNAME, "")}
                ),
                description_placeholders={
                    "host": entry.data[CONF_HOST],
                    "port": str(entry.data[CONF_PORT]),
                },
                errors=errors,
            )

        if user_input is None:
            return form({})
        # The entry's pin (if any) comes along: new credentials go only to that server.
        return await self._async_connect(
            {**entry.data, **user_input},
            lambda data: self.async_update_reload_and_abort(entry, data=_clean(data)),
            form,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()

        def form(errors: dict[str, str]) -> ConfigFlowResult:
            return self.async_show_form(
                step_id="reconfigure",
                data_schema=self.add_suggested_values_to_schema(
                    _server_schema(entry.data), user_input or dict(entry.data)
                ),
                errors=errors,
            )

        if user_input is None:
            return form({})
        self._async_abort_entries_match(
            {CONF_HOST: user_input[CONF_HOST], CONF_PORT: user_input[CONF_PORT]}
        )
        # An entry keyed (and titled) by its address follows the new one; a
        # discovered bridge keeps its server id, and a renamed entry its title.
        old, new = _address(entry.data), _address(user_input)
        # Like a new entry, except that the certificate already pinned needs no
        # confirmation. A server without TLS drops the pin: the user typed the password.
        if pin := entry.data.get(CONF_TLS_SHA256):
            self._trusted[new] = pin
        return await self._async_connect(
            _clean(user_input),
            lambda data: self.async_update_reload_and_abort(
                entry,
                unique_id=new if entry.unique_id == old else entry.unique_id,
                title=new if entry.title == old else entry.title,
                data={**data, CONF_ID_PREFIX: id_prefix(entry)},
            ),
            form,
        )
