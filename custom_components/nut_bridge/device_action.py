"""Device actions of a UPS: its standard NUT instant commands (automation editor → Action → Device).

Action types are command names with "." replaced by "_" (types must be slug-like).
Only the standard commands of COMMANDS are offered, because each offered type needs
a ``device_automation.action_type`` translation and a type has no room for a
placeholder. Left out, and still reachable through ``nut_bridge.run_command``:
per-outlet commands (``outlet.N.*``, already the outlet switches and cycle buttons),
``experimental.*`` and vendor commands.
"""

from __future__ import annotations

from typing import Any, Final

import probatio as vol
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_TYPE
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .const import DOMAIN
from .coordinator import NutBridgeConfigEntry
from .entity import ups_of_device
from .services import async_run_command, get_controls

# The standard instant commands of NUT's docs/nut-names.txt, in the order offered.
COMMANDS: Final = (
    "test.battery.start.quick",
    "test.battery.start.deep",
    "test.battery.start.low",
    "test.battery.start",
    "test.battery.stop",
    "test.system.start",
    "test.panel.start",
    "test.panel.stop",
    "test.failure.start",
    "test.failure.stop",
    "calibrate.start",
    "calibrate.stop",
    "beeper.enable",
    "beeper.disable",
    "beeper.mute",
    "beeper.toggle",
    "beeper.on",
    "beeper.off",
    "load.on",
    "load.off",
    "load.on.delay",
    "load.off.delay",
    "shutdown.return",
    "shutdown.stayoff",
    "shutdown.stop",
    "shutdown.reboot",
    "shutdown.reboot.graceful",
    "shutdown.default",
    "bypass.start",
    "bypass.stop",
    "reset.input.minmax",
    "reset.watchdog",
)


def action_type(command: str) -> str:
    """The device action type of a command (NUT names are case-insensitive)."""
    return command.lower().replace(".", "_")


# Action type -> the standard command; COMMANDS has no two names with the same type.
ACTION_TYPES: Final = {action_type(command): command for command in COMMANDS}

ACTION_SCHEMA: Final = cv.DEVICE_ACTION_BASE_SCHEMA.extend({vol.Required(CONF_TYPE): vol.In(ACTION_TYPES)})


def _ups_of_device(hass: HomeAssistant, device_id: str) -> tuple[NutBridgeConfigEntry, str] | None:
    """The entry and UPS name of one of our UPS devices; None for anything else (the server too)."""
    device, entry = dr.async_get_device_and_config_entry_for_domain(hass, device_id, domain=DOMAIN)
    if device is None or entry is None:
        return None
    ups = ups_of_device(entry, device.identifiers)
    return None if ups is None else (entry, ups)


async def async_get_actions(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """One action per standard instant command the UPS lists."""
    target = _ups_of_device(hass, device_id)
    if target is None or target[0].state is not ConfigEntryState.LOADED:
        return []
    entry, ups = target
    supported = {action_type(command) for command in get_controls(hass, entry, ups).commands}
    return [
        {CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id, CONF_TYPE: type_}
        for type_ in ACTION_TYPES
        if type_ in supported
    ]


async def async_validate_action_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """The schema, and the device must be one of our UPS (not the server device).

    Having this hook also makes Home Assistant check that the device belongs to this
    integration. Whether the UPS lists the command is checked when it runs: the UPS
    may be unreachable while automations load.
    """
    validated: ConfigType = ACTION_SCHEMA(config)
    if _ups_of_device(hass, validated[CONF_DEVICE_ID]) is None:
        raise InvalidDeviceAutomationConfig(f"Device {validated[CONF_DEVICE_ID]} is not a NUT Bridge UPS")
    return validated


async def async_call_action_from_config(
    hass: HomeAssistant, config: ConfigType, variables: TemplateVarsType, context: Context | None
) -> None:
    """Run the action's instant command on the device's UPS."""
    target = _ups_of_device(hass, config[CONF_DEVICE_ID])
    if target is None:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="invalid_target")
    entry, ups = target
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry": entry.title},
        )
    type_: str = config[CONF_TYPE]
    # The name as this UPS spells it; an unlisted one is refused by async_run_command.
    command = next(
        (c for c in sorted(get_controls(hass, entry, ups).commands) if action_type(c) == type_),
        ACTION_TYPES[type_],
    )
    await async_run_command(hass, entry, ups, command)
