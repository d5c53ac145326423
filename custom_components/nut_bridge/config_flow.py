"""Config flow: user, reauth and reconfigure steps."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME

from nutbridge.client import NutError

from .const import AUTH_FAILED_CODES, DEFAULT_HOST, DEFAULT_PORT, DOMAIN
from .coordinator import async_open_client

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


async def _async_validate(data: Mapping[str, Any]) -> dict[str, str]:
    """Try the server with these settings; returns the form errors (empty when fine)."""
    try:
        client, _ = await async_open_client(
            data[CONF_HOST], data[CONF_PORT], data.get(CONF_USERNAME) or None, data.get(CONF_PASSWORD)
        )
    except NutError as err:
        if err.code in AUTH_FAILED_CODES:
            return {"base": "invalid_auth"}
        _LOGGER.debug("Cannot connect to %s:%s: %s", data[CONF_HOST], data[CONF_PORT], err)
        return {"base": "cannot_connect"}
    await client.close()
    return {}


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data: empty credentials are not stored."""
    return {k: v for k, v in data.items() if v not in ("", None)}


class NutBridgeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one NUT server (all its UPS) per entry."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            await self.async_set_unique_id(f"{user_input[CONF_HOST]}:{user_input[CONF_PORT]}")
            self._abort_if_unique_id_configured()
            errors = await _async_validate(user_input)
            if not errors:
                return self.async_create_entry(
                    title=f"{user_input[CONF_HOST]}:{user_input[CONF_PORT]}", data=_clean(user_input)
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_server_schema({}), user_input or {}),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            errors = await _async_validate(data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=_clean(data))
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                _AUTH_SCHEMA, {CONF_USERNAME: entry.data.get(CONF_USERNAME, "")}
            ),
            description_placeholders={"host": entry.data[CONF_HOST], "port": str(entry.data[CONF_PORT])},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            unique_id = f"{user_input[CONF_HOST]}:{user_input[CONF_PORT]}"
            if unique_id != entry.unique_id:
                await self.async_set_unique_id(unique_id)
                self._abort_if_unique_id_configured()
            errors = await _async_validate(user_input)
            if not errors:
                return self.async_update_reload_and_abort(
                    entry, unique_id=unique_id, title=unique_id, data=_clean(user_input)
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _server_schema(entry.data), user_input or dict(entry.data)
            ),
            errors=errors,
        )
