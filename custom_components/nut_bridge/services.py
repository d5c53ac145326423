"""Commands and settings: per-UPS control metadata, one-shot control connections, service actions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, cast

import probatio as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import VolDictType
from homeassistant.util.json import JsonValueType

from nutbridge.client import NutError, ReconnectingClient

from .const import AUTH_FAILED_CODES, CLIENT_TIMEOUT, CONF_TLS_SHA256, DOMAIN
from .controls import UpsControls
from .coordinator import NutBridgeConfigEntry, tls_options
from .entity import ups_of_device
from .repairs import async_clear_access_denied, async_report_access_denied

_LOGGER = logging.getLogger(__name__)

SERVICE_RUN_COMMAND: Final = "run_command"
SERVICE_SET_VARIABLE: Final = "set_variable"
SERVICE_SHUTDOWN: Final = "shutdown"
SERVICE_GET_EVENTS: Final = "get_events"

ATTR_DEVICE_ID: Final = "device_id"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_UPS: Final = "ups"
ATTR_COMMAND: Final = "command"
ATTR_PARAMETER: Final = "parameter"
ATTR_VARIABLE: Final = "variable"
ATTR_VALUE: Final = "value"
ATTR_MODE: Final = "mode"
ATTR_DELAY: Final = "delay"
ATTR_COUNT: Final = "count"

MODE_RETURN: Final = "return"
MODE_LOAD_OFF: Final = "load_off"
MODE_FSD: Final = "fsd"

TRACKING_TIMEOUT: Final = 10.0
TRACKING_INTERVAL: Final = 0.2


def _error(key: str, **placeholders: str) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _nut_error(err: NutError | OSError | TimeoutError, ups: str) -> HomeAssistantError:
    if isinstance(err, NutError):
        if err.code in AUTH_FAILED_CODES:
            return _error("access_denied", ups=ups, error=err.code)
        return _error("command_failed", ups=ups, error=err.code)
    return _error("command_failed", ups=ups, error=str(err) or type(err).__name__)


def _refused(
    hass: HomeAssistant,
    entry: NutBridgeConfigEntry,
    err: NutError | OSError | TimeoutError,
    ups: str,
    what: str,
) -> HomeAssistantError:
    """The service error for a failed action; a refusal also raises the permission repair."""
    if isinstance(err, NutError) and err.code in AUTH_FAILED_CODES:
        async_report_access_denied(hass, entry, ups, what)
    return _nut_error(err, ups)


@asynccontextmanager
async def async_control_client(entry: NutBridgeConfigEntry) -> AsyncIterator[ReconnectingClient]:
    """A short-lived authenticated connection with the entry's credentials (and its
    pinned certificate: the coordinator's TLS rules apply here too)."""
    client = ReconnectingClient(
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        timeout=CLIENT_TIMEOUT,
        tls=tls_options(entry.data.get(CONF_TLS_SHA256)),
    )
    try:
        await client.connect()
        if username := entry.data.get(CONF_USERNAME):
            await client.authenticate(username, entry.data.get(CONF_PASSWORD) or "")
        yield client
    finally:
        await client.close()


def get_controls(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> UpsControls:
    """The UPS's commands and writable variables, as the coordinator last read them."""
    data = entry.runtime_data.coordinator.data or {}
    state = data.get(ups)
    return state.controls if state is not None and state.controls is not None else UpsControls()


async def async_run_command(
    hass: HomeAssistant,
    entry: NutBridgeConfigEntry,
    ups: str,
    command: str,
    parameter: str | None = None,
    *,
    track: bool = False,
) -> str | None:
    """INSTCMD; with ``track`` returns the TRACKING result (None when the server has no tracking)."""
    controls = get_controls(hass, entry, ups)
    if command not in controls.commands:
        raise _invalid("command_not_supported", ups=ups, command=command)
    result: str | None = None
    try:
        async with async_control_client(entry) as client:
            tracking = False
            if track:
                try:
                    await client.set_tracking(True)
                    tracking = True
                except NutError as err:
                    _LOGGER.debug("Server has no command tracking: %s", err.code)
            tracking_id = await client.instcmd(ups, command, parameter)
            if tracking and tracking_id is not None:
                result = await client.wait_tracking(
                    tracking_id, timeout=TRACKING_TIMEOUT, interval=TRACKING_INTERVAL
                )
    except (NutError, OSError, TimeoutError) as err:
        raise _refused(hass, entry, err, ups, command) from err
    else:
        async_clear_access_denied(hass, entry)
    finally:
        await entry.runtime_data.coordinator.async_request_refresh()
    return result


async def async_set_variable(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str, variable: str, value: str
) -> None:
    """SET VAR, validated against the variable's type, enum and range."""
    controls = get_controls(hass, entry, ups)
    if variable not in controls.types:
        raise _invalid("variable_not_writable", ups=ups, variable=variable)
    if (enum := controls.enums.get(variable)) and value not in enum:
        raise _invalid("invalid_value", variable=variable, value=value, allowed=", ".join(enum))
    if (length := controls.string_length(variable)) is not None and len(value) > length:
        raise _invalid("invalid_value", variable=variable, value=value, allowed=f"<= {length} chars")
    if (bounds := controls.ranges.get(variable)) is not None:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not bounds[0] <= number <= bounds[1]:
            raise _invalid(
                "invalid_value",
                variable=variable,
                value=value,
                allowed=f"{_fmt(bounds[0])}..{_fmt(bounds[1])}",
            )
    try:
        async with async_control_client(entry) as client:
            await client.set_var(ups, variable, value)
    except (NutError, OSError, TimeoutError) as err:
        raise _refused(hass, entry, err, ups, f"SET VAR {variable}") from err
    else:
        async_clear_access_denied(hass, entry)
    finally:
        await entry.runtime_data.coordinator.async_request_refresh()


async def async_fsd(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> None:
    try:
        async with async_control_client(entry) as client:
            await client.fsd(ups)
    except (NutError, OSError, TimeoutError) as err:
        raise _refused(hass, entry, err, ups, "FSD") from err
    else:
        async_clear_access_denied(hass, entry)
    finally:
        await entry.runtime_data.coordinator.async_request_refresh()


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() else str(x)


def _resolve(hass: HomeAssistant, call: ServiceCall) -> tuple[NutBridgeConfigEntry, str]:
    """The config entry and UPS name a service call targets."""
    entry, ups = _resolve_entry(hass, call)
    known = list(entry.runtime_data.coordinator.data or {})
    if ups is None and len(known) == 1:
        ups = known[0]
    if ups is None or ups not in known:
        raise _invalid("invalid_target")
    return entry, ups


def _resolve_entry(hass: HomeAssistant, call: ServiceCall) -> tuple[NutBridgeConfigEntry, str | None]:
    """The config entry a service call targets, and the UPS if the call names one."""
    entry_id: str | None = call.data.get(ATTR_CONFIG_ENTRY_ID)
    ups: str | None = call.data.get(ATTR_UPS)
    if device_id := call.data.get(ATTR_DEVICE_ID):
        device, candidate = dr.async_get_device_and_config_entry_for_domain(
            hass, device_id, domain=DOMAIN
        )
        if device is None or candidate is None:
            raise _invalid("invalid_target")
        entry_id = candidate.entry_id
        ups = ups_of_device(candidate, device.identifiers) or ups
    if entry_id is None:
        raise _invalid("invalid_target")
    entry: NutBridgeConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise _invalid("invalid_target")
    if entry.state is not ConfigEntryState.LOADED:
        raise _invalid("entry_not_loaded", entry=entry.title)
    return entry, ups


_TARGET: VolDictType = {
    vol.Optional(ATTR_DEVICE_ID): cv.string,
    vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Optional(ATTR_UPS): cv.string,
}

RUN_COMMAND_SCHEMA: Final = vol.Schema(
    {**_TARGET, vol.Required(ATTR_COMMAND): cv.string, vol.Optional(ATTR_PARAMETER): cv.string}
)
SET_VARIABLE_SCHEMA: Final = vol.Schema(
    {**_TARGET, vol.Required(ATTR_VARIABLE): cv.string, vol.Required(ATTR_VALUE): cv.string}
)
SHUTDOWN_SCHEMA: Final = vol.Schema(
    {
        **_TARGET,
        vol.Optional(ATTR_MODE, default=MODE_RETURN): vol.In([MODE_RETURN, MODE_LOAD_OFF, MODE_FSD]),
        vol.Optional(ATTR_DELAY): vol.All(vol.Coerce(int), vol.Range(min=0, max=86400)),
    }
)


GET_EVENTS_SCHEMA: Final = vol.Schema(
    {**_TARGET, vol.Optional(ATTR_COUNT, default=50): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000))}
)


async def async_get_events(
    entry: NutBridgeConfigEntry, ups: str | None, count: int
) -> list[dict[str, Any]]:
    """The newest ``count`` records of the bridge's event history (docs/events.md), oldest first."""
    try:
        async with async_control_client(entry) as client:
            return await client.list_events(ups, count)
    except NutError as err:
        if err.code == "UNKNOWN-COMMAND":
            raise _invalid("events_not_supported", entry=entry.title) from err
        raise _nut_error(err, ups or entry.title) from err
    except (OSError, TimeoutError) as err:
        raise _nut_error(err, ups or entry.title) from err


async def _async_get_events(call: ServiceCall) -> ServiceResponse:
    entry, ups = _resolve_entry(call.hass, call)
    if ups is not None and ups not in (entry.runtime_data.coordinator.data or {}):
        raise _invalid("invalid_target")
    events = await async_get_events(entry, ups, call.data[ATTR_COUNT])
    return {"events": cast(list[JsonValueType], events)}


async def _async_run_command(call: ServiceCall) -> ServiceResponse:
    entry, ups = _resolve(call.hass, call)
    result = await async_run_command(
        call.hass,
        entry,
        ups,
        call.data[ATTR_COMMAND],
        call.data.get(ATTR_PARAMETER),
        track=call.return_response,
    )
    if not call.return_response:
        return None
    return {"ups": ups, "command": call.data[ATTR_COMMAND], "result": result}


async def _async_set_variable(call: ServiceCall) -> None:
    entry, ups = _resolve(call.hass, call)
    await async_set_variable(call.hass, entry, ups, call.data[ATTR_VARIABLE], call.data[ATTR_VALUE])


async def _async_shutdown(call: ServiceCall) -> None:
    entry, ups = _resolve(call.hass, call)
    mode: str = call.data[ATTR_MODE]
    if mode == MODE_FSD:
        await async_fsd(call.hass, entry, ups)
        return
    command = "shutdown.return" if mode == MODE_RETURN else "load.off.delay"
    delay: int | None = call.data.get(ATTR_DELAY)
    if mode == MODE_LOAD_OFF and delay is None:
        command = "load.off"
    await async_run_command(
        call.hass, entry, ups, command, None if delay is None else str(delay)
    )


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_RUN_COMMAND,
        _async_run_command,
        schema=RUN_COMMAND_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_SET_VARIABLE, _async_set_variable, schema=SET_VARIABLE_SCHEMA
    )
    hass.services.async_register(DOMAIN, SERVICE_SHUTDOWN, _async_shutdown, schema=SHUTDOWN_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_EVENTS,
        _async_get_events,
        schema=GET_EVENTS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
