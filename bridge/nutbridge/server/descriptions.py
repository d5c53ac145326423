"""Variable and command descriptions for GET DESC / GET CMDDESC.

Upstream reads them from ``$DATAPATH/cmdvartab`` (``VARDESC name "text"`` and
``CMDDESC name "text"`` lines). We read the same file where NUT is installed,
so answers match the local upsd byte for byte; without one, a short table of
our own wording covers the most common names.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.parser import ConfigError, read_entries

log = logging.getLogger(__name__)

SEARCH = (
    "/usr/share/nut/cmdvartab",
    "/usr/local/share/nut/cmdvartab",
    "/etc/nut/cmdvartab",
    "/usr/local/ups/share/cmdvartab",
)

# Our own short wording, used only when no cmdvartab is installed.
_FALLBACK_VARS = {
    "ups.status": "UPS status flags",
    "ups.alarm": "Active UPS alarms",
    "ups.load": "Load on the UPS (percent of capacity)",
    "ups.realpower": "Active power drawn by the load (W)",
    "ups.realpower.nominal": "Rated active power (W)",
    "ups.power": "Apparent power drawn by the load (VA)",
    "ups.power.nominal": "Rated apparent power (VA)",
    "ups.temperature": "Internal UPS temperature (degrees C)",
    "ups.mfr": "Manufacturer",
    "ups.model": "Model",
    "ups.serial": "Serial number",
    "ups.id": "User-assigned UPS name",
    "ups.beeper.status": "Beeper state (enabled, disabled or muted)",
    "ups.delay.shutdown": "Seconds between a shutdown command and the output turning off",
    "ups.delay.start": "Seconds between mains returning and the output turning on",
    "ups.test.result": "Outcome of the last self-test",
    "battery.charge": "Battery charge (percent)",
    "battery.charge.low": "Charge below which the UPS reports low battery (percent)",
    "battery.runtime": "Estimated runtime on battery (seconds)",
    "battery.runtime.low": "Runtime below which the UPS reports low battery (seconds)",
    "battery.voltage": "Battery voltage (V)",
    "battery.voltage.nominal": "Rated battery voltage (V)",
    "battery.type": "Battery chemistry",
    "input.voltage": "Mains voltage (V)",
    "input.voltage.nominal": "Rated mains voltage (V)",
    "input.frequency": "Mains frequency (Hz)",
    "input.transfer.low": "Mains voltage below which the UPS goes on battery (V)",
    "input.transfer.high": "Mains voltage above which the UPS goes on battery (V)",
    "output.voltage": "Output voltage (V)",
    "output.frequency": "Output frequency (Hz)",
    "outlet.count": "Number of outlets",
    "device.model": "Device model",
    "device.mfr": "Device manufacturer",
    "device.serial": "Device serial number",
    "device.type": "Device type (ups, pdu, ...)",
    "driver.name": "Driver serving this device",
    "driver.version": "Driver version",
}
_FALLBACK_CMDS = {
    "load.off": "Switch the output off now",
    "load.on": "Switch the output on now",
    "load.off.delay": "Switch the output off after a delay",
    "load.on.delay": "Switch the output on after a delay",
    "shutdown.return": "Turn the output off, and on again when mains returns",
    "shutdown.stayoff": "Turn the output off and keep it off",
    "shutdown.stop": "Cancel a pending shutdown",
    "shutdown.reboot": "Power-cycle the output",
    "test.battery.start": "Start a battery test",
    "test.battery.start.quick": "Start a quick battery test",
    "test.battery.start.deep": "Start a deep battery test",
    "test.battery.stop": "Stop the battery test",
    "test.failure.start": "Simulate a mains failure",
    "test.failure.stop": "End the simulated mains failure",
    "calibrate.start": "Start runtime calibration",
    "calibrate.stop": "Stop runtime calibration",
    "beeper.enable": "Enable the beeper",
    "beeper.disable": "Disable the beeper",
    "beeper.mute": "Silence the beeper for the current alarm",
    "beeper.toggle": "Toggle the beeper",
    "bypass.start": "Put the UPS on bypass",
    "bypass.stop": "Take the UPS off bypass",
}


class Descriptions:
    def __init__(self, vars: dict[str, str] | None = None, cmds: dict[str, str] | None = None,
                 source: str = "built-in") -> None:
        self._vars = {k.lower(): v for k, v in (vars if vars is not None else _FALLBACK_VARS).items()}
        self._cmds = {k.lower(): v for k, v in (cmds if cmds is not None else _FALLBACK_CMDS).items()}
        self.source = source

    def var(self, name: str) -> str | None:
        return self._vars.get(name.lower())

    def cmd(self, name: str) -> str | None:
        return self._cmds.get(name.lower())

    @classmethod
    def load(cls, datapath: str | None = None) -> Descriptions:
        candidates = [str(Path(datapath) / "cmdvartab")] if datapath else list(SEARCH)
        for c in candidates:
            p = Path(c)
            if not p.is_file():
                continue
            try:
                entries = read_entries(p)
            except ConfigError as exc:
                log.warning("%s (descriptions not loaded)", exc)
                continue
            vars_: dict[str, str] = {}
            cmds: dict[str, str] = {}
            for e in entries:
                if len(e.words) >= 3 and e.words[0] == "VARDESC":
                    vars_.setdefault(e.words[1], e.words[2])
                elif len(e.words) >= 3 and e.words[0] == "CMDDESC":
                    cmds.setdefault(e.words[1], e.words[2])
            return cls(vars_, cmds, str(p))
        if datapath:
            log.warning("no cmdvartab in DATAPATH %s: descriptions unavailable", datapath)
            return cls({}, {}, "none")
        return cls()
