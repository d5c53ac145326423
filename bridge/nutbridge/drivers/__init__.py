"""Driver families and the registry that maps ``driver =`` names to them.

A section's config may carry ``_mode`` (drivers/external/__init__.py has the contract):
``attach`` -> :class:`~nutbridge.drivers.external.driver.AttachedDriver` (a driver started
elsewhere, by its socket), ``hosted`` -> :class:`~nutbridge.drivers.external.driver.HostedDriver`
(NUT's C binary, run by the bridge), ``native`` or none -> the bridge's own family for that
name; a name the bridge has no family for runs hosted when NUT's binary is found.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ..state import Device
from .base import ConfigError, DeviceError, Driver, Status
from .external import locate

# driver name -> "module:Class"; modules load lazily so optional dependencies
# (pyusb, pysnmp, pyserial) are needed only by those who use them.
_REGISTRY: dict[str, str] = {
    "nutbridge-sim": "nutbridge.drivers.simulated.driver:SimulatedUPS",
    "dummy-ups": "nutbridge.drivers.dummy.driver:DummyUPS",
    "nutdrv_qx": "nutbridge.drivers.qx.driver:MegatecDriver",
    "blazer_ser": "nutbridge.drivers.qx.driver:MegatecDriver",
    "blazer_usb": "nutbridge.drivers.qx.driver:MegatecDriver",
    "apcsmart": "nutbridge.drivers.apcsmart.driver:ApcSmart",
    "usbhid-ups": "nutbridge.drivers.usbhid.driver:UsbHid",
    "snmp-ups": "nutbridge.drivers.snmp.driver:SnmpUps",
    "powerman-pdu": "nutbridge.drivers.powerman.driver:PowermanPDU",
}
_REPEATER = "nutbridge.drivers.repeater.driver:Repeater"
_ATTACHED = "nutbridge.drivers.external.driver:AttachedDriver"
_HOSTED = "nutbridge.drivers.external.driver:HostedDriver"


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def known_drivers() -> list[str]:
    return sorted(_REGISTRY)


def is_native(name: str) -> bool:
    """Does the bridge have its own implementation of driver ``name``?"""
    return name in _REGISTRY


def driver_class(name: str, config: Mapping[str, str]) -> type[Driver]:
    """Pick the class for a ups.conf section (its driver config, see the module docstring).
    Raises ConfigError if there is none: an unknown name without a NUT binary, a bad mode."""
    run_mode = locate.mode(config)
    if run_mode not in ("", *locate.MODES):
        raise ConfigError(f"unknown driver mode '{run_mode}' (one of {', '.join(locate.MODES)})")
    if run_mode == "attach":
        return _load(_ATTACHED)
    if run_mode == "hosted" or (run_mode == "" and name not in _REGISTRY):
        if locate.find_driver({**config, "driver": name}) is None:
            message = locate.not_found_message({**config, "driver": name})
            if run_mode == "":
                message = (f"unknown driver '{name}': the bridge has no such driver of its own "
                           f"(known: {', '.join(known_drivers())}), and {message}")
            raise ConfigError(message)
        return _load(_HOSTED)
    target = _REGISTRY.get(name)
    if name == "dummy-ups":
        port = config.get("port", "")
        mode = config.get("mode", "")
        if mode == "repeater" or (not mode and "@" in port):
            target = _REPEATER
    if target is None:
        raise ConfigError(f"unknown driver '{name}' (known: {', '.join(known_drivers())})")
    return _load(target)


def _load(target: str) -> type[Driver]:
    mod_name, cls_name = target.split(":")
    cls: type[Driver] = getattr(importlib.import_module(mod_name), cls_name)
    return cls


def create_driver(device: Device, config: Mapping[str, str]) -> Driver:
    return driver_class(config.get("driver", ""), config)(device, config)


__all__ = [
    "ConfigError",
    "DeviceError",
    "Driver",
    "Status",
    "create_driver",
    "driver_class",
    "is_native",
    "known_drivers",
    "register",
]
