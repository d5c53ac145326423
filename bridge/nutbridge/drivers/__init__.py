"""Driver families and the registry that maps ``driver =`` names to them."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ..state import Device
from .base import ConfigError, DeviceError, Driver, Status

# driver name -> "module:Class"; modules load lazily so optional dependencies
# (pyusb, pysnmp, pyserial) are needed only by those who use them.
_REGISTRY: dict[str, str] = {
    "nutbridge-sim": "nutbridge.drivers.simulated.driver:SimulatedUPS",
    "dummy-ups": "nutbridge.drivers.dummy.driver:DummyUPS",
    "nutdrv_qx": "nutbridge.drivers.qx.driver:MegatecDriver",
    "blazer_ser": "nutbridge.drivers.qx.driver:MegatecDriver",
    "apcsmart": "nutbridge.drivers.apcsmart.driver:ApcSmart",
    "usbhid-ups": "nutbridge.drivers.usbhid.driver:UsbHid",
    "snmp-ups": "nutbridge.drivers.snmp.driver:SnmpUps",
    "powerman-pdu": "nutbridge.drivers.powerman.driver:PowermanPDU",
}
_REPEATER = "nutbridge.drivers.repeater.driver:Repeater"


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def known_drivers() -> list[str]:
    return sorted(_REGISTRY)


def driver_class(name: str, config: Mapping[str, str]) -> type[Driver]:
    """Pick the class for a ups.conf section. Raises ConfigError if unknown."""
    target = _REGISTRY.get(name)
    if name == "dummy-ups":
        port = config.get("port", "")
        mode = config.get("mode", "")
        if mode == "repeater" or (not mode and "@" in port):
            target = _REPEATER
    if target is None:
        raise ConfigError(f"unknown driver '{name}' (known: {', '.join(known_drivers())})")
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
    "known_drivers",
    "register",
]
