"""nutbridge-sim: the embedded simulated UPS (``driver = nutbridge-sim``).

Physics live in :mod:`nutbridge.simulation.model`; this module maps them to NUT names, flags
and commands. Simulated time runs ``simspeed`` times faster than real time, in
whole one-second ticks, so a given speed, seed and command sequence always
give the same data.

ups.conf options (all optional):

====================  =========================================  =========
option                meaning                                    default
====================  =========================================  =========
simspeed              simulated seconds per real second          1
seed                  seed of the input noise                    0
load                  output load in W                           300
realpower_nominal     ups.realpower.nominal, W                   900
power_nominal         ups.power.nominal, VA                      1500
voltage               input.voltage.nominal, V                   230
frequency             input.frequency.nominal, Hz                50 (60 below 150 V)
battery_voltage       battery.voltage.nominal, V                 24
capacity              battery energy, Wh                         150
recharge              full recharge time, s                      10800
charge                initial battery.charge, %                  100
outlets               switchable outlets (outlet.1 ... outlet.N) 0
mfr, model, serial    identity strings                           NUT Bridge, Simulated UPS, SIM-<seed>
====================  =========================================  =========

Writable variables for scripting the simulation (``upsrw``), besides the usual
battery.charge.low, battery.runtime.low, ups.delay.shutdown, ups.delay.start,
ups.beeper.status, ups.id, input.transfer.low/high and outlet.N.desc:

* ``experimental.sim.load``: output load in W (ups.load / ups.realpower follow);
* ``experimental.sim.mains``: ``on`` / ``off`` (same as test.failure.stop/start);
* ``experimental.sim.input.voltage``: mains voltage; outside the transfer
  points the UPS goes on battery, near them it boosts or trims;
* ``experimental.sim.battery.health``: % of capacity left; below 50 the
  battery needs replacing (RB) and battery tests fail.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...simulation.model import Params, SimUPS
from ...state import Device
from ..base import ConfigError, Driver, Status

_OUTLET_CMD = re.compile(r"^outlet\.(\d+)\.load\.(on|off|cycle)$")
# Commands without parameters: name -> what it does to the model.
_SIMPLE: dict[str, Callable[[SimUPS], None]] = {
    "test.failure.start": lambda m: m.set_mains(False),
    "test.failure.stop": lambda m: m.set_mains(True),
    "test.battery.start.quick": lambda m: m.start_test("quick"),
    "test.battery.start.deep": lambda m: m.start_test("deep"),
    "test.battery.stop": SimUPS.stop_test,
    "load.off": lambda m: m.load_off(),
    "load.on": lambda m: m.load_on(),
    "shutdown.return": lambda m: m.shutdown("return"),
    "shutdown.stayoff": lambda m: m.shutdown("stayoff"),
    "shutdown.reboot": lambda m: m.shutdown("reboot"),
    "shutdown.stop": SimUPS.shutdown_stop,
    "beeper.enable": lambda m: m.beeper_cmd("enable"),
    "beeper.disable": lambda m: m.beeper_cmd("disable"),
    "beeper.mute": lambda m: m.beeper_cmd("mute"),
    "beeper.toggle": lambda m: m.beeper_cmd("toggle"),
    "calibrate.start": lambda m: setattr(m, "calibrating", True),
    "calibrate.stop": lambda m: setattr(m, "calibrating", False),
    "bypass.start": lambda m: setattr(m, "bypass", True),
    "bypass.stop": lambda m: setattr(m, "bypass", False),
}
_DELAYED = ("load.off.delay", "load.on.delay")


@dataclass(frozen=True)
class RwSpec:
    """A writable variable: its NUT type and how a new value reaches the model."""

    apply: Callable[[str], None]
    string: bool = False
    aux: int = 0
    enums: tuple[str, ...] = ()
    range: tuple[int, int] | None = None

    def valid(self, value: str) -> bool:
        if self.enums:
            return value in self.enums
        if self.string:
            return len(value) <= self.aux
        try:
            v = float(value)
        except ValueError:
            return False
        return math.isfinite(v) and (self.range is None or self.range[0] <= v <= self.range[1])


class SimulatedUPS(Driver):
    names = ("nutbridge-sim",)
    options = frozenset({
        "simspeed", "seed", "load", "realpower_nominal", "power_nominal", "voltage", "frequency",
        "battery_voltage", "capacity", "recharge", "charge", "outlets", "mfr", "model", "serial",
    })
    version = "0.1"

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        c = self.config
        try:
            self.speed = float(c.get("simspeed", "1"))
            voltage = float(c.get("voltage", "230"))
            params = Params(
                realpower_nominal=float(c.get("realpower_nominal", "900")),
                power_nominal=float(c.get("power_nominal", "1500")),
                voltage_nominal=voltage,
                frequency_nominal=float(c.get("frequency", "60" if voltage < 150 else "50")),
                battery_voltage_nominal=float(c.get("battery_voltage", "24")),
                capacity_wh=float(c.get("capacity", "150")),
                recharge_s=float(c.get("recharge", "10800")),
                outlets=int(c.get("outlets", "0")),
                seed=int(c.get("seed", "0")),
            )
            self.model = SimUPS(params, load_w=float(c.get("load", "300")),
                                charge=min(100.0, max(0.0, float(c.get("charge", "100")))))
        except ValueError as exc:
            raise ConfigError(f"nutbridge-sim: bad option value ({exc})") from None
        if self.speed <= 0 or params.outlets < 0 or params.realpower_nominal <= 0:
            raise ConfigError("nutbridge-sim: simspeed and realpower_nominal must be > 0, outlets >= 0")
        self.ident = {
            "mfr": c.get("mfr", "NUT Bridge"),
            "model": c.get("model", "Simulated UPS"),
            "serial": c.get("serial", f"SIM-{params.seed:04d}"),
        }
        self.ups_id = "sim"
        self.outlet_desc = [f"Outlet {n}" for n in range(1, params.outlets + 1)]
        self.rw = self._rw_specs()
        self._last: float | None = None
        self._typed = False

    # ---- life cycle -------------------------------------------------------------------
    async def update(self) -> None:
        self._catch_up()
        self._publish()

    def _catch_up(self) -> None:
        """Run the model up to the present (simulated) time."""
        now = time.monotonic()
        if self._last is not None:
            self.model.advance((now - self._last) * self.speed)
        self._last = now

    # ---- NUT view -----------------------------------------------------------------------
    def _rw_specs(self) -> dict[str, RwSpec]:
        m, p = self.model, self.model.p
        nom = p.voltage_nominal

        def number(attr: str) -> Callable[[str], None]:
            return lambda v: setattr(m, attr, float(v))

        specs = {
            "battery.charge.low": RwSpec(number("charge_low"), range=(0, 95)),
            "battery.runtime.low": RwSpec(number("runtime_low"), range=(0, 3600)),
            "ups.delay.shutdown": RwSpec(number("delay_shutdown"), range=(0, 3600)),
            "ups.delay.start": RwSpec(number("delay_start"), range=(0, 3600)),
            "ups.beeper.status": RwSpec(lambda v: setattr(m, "beeper", v), string=True, aux=8,
                                        enums=("enabled", "disabled", "muted")),
            "ups.id": RwSpec(lambda v: setattr(self, "ups_id", v), string=True, aux=16),
            "input.transfer.low": RwSpec(number("transfer_low"),
                                         range=(round(0.65 * nom), round(0.95 * nom))),
            "input.transfer.high": RwSpec(number("transfer_high"),
                                          range=(round(1.04 * nom), round(1.3 * nom))),
            "experimental.sim.load": RwSpec(number("load_w"), range=(0, round(2 * p.realpower_nominal))),
            "experimental.sim.mains": RwSpec(lambda v: m.set_mains(v == "on"), string=True, aux=3,
                                             enums=("on", "off")),
            "experimental.sim.input.voltage": RwSpec(number("mains_voltage"), range=(0, round(1.5 * nom))),
            "experimental.sim.battery.health": RwSpec(number("health"), range=(0, 100)),
        }
        for i in range(p.outlets):
            specs[f"outlet.{i + 1}.desc"] = RwSpec(self._desc_setter(i), string=True, aux=20)
        return specs

    def _desc_setter(self, i: int) -> Callable[[str], None]:
        def apply(value: str) -> None:
            self.outlet_desc[i] = value

        return apply

    def _values(self) -> dict[str, str | int | float]:
        m, p = self.model, self.model.p
        out_on = m.output_on
        on_inverter = out_on and (m.discharging or not m.mains_ok) and not m.bypass
        v: dict[str, str | int | float] = {
            "device.mfr": self.ident["mfr"], "device.model": self.ident["model"],
            "device.serial": self.ident["serial"], "device.type": "ups",
            "ups.mfr": self.ident["mfr"], "ups.model": self.ident["model"],
            "ups.serial": self.ident["serial"], "ups.type": "line-interactive",
            "ups.firmware": self.version, "ups.id": self.ups_id,
            "ups.load": round(m.load_pct()),
            "ups.realpower": round(m.output_load()),
            "ups.power": round(m.output_load() / 0.9),
            "ups.realpower.nominal": round(p.realpower_nominal),
            "ups.power.nominal": round(p.power_nominal),
            "ups.temperature": round(m.temperature, 1),
            "ups.beeper.status": m.beeper,
            "ups.delay.shutdown": round(m.delay_shutdown), "ups.delay.start": round(m.delay_start),
            "ups.timer.shutdown": m.timer_value(m.timer_shutdown),
            "ups.timer.start": m.timer_value(m.timer_start),
            "ups.test.result": m.test_result,
            "battery.charge": round(m.charge),
            "battery.charge.low": round(m.charge_low),
            "battery.runtime": round(m.runtime()),
            "battery.runtime.low": round(m.runtime_low),
            "battery.voltage": round(m.battery_voltage(), 2),
            "battery.voltage.nominal": round(p.battery_voltage_nominal),
            "battery.type": "PbAc",
            "input.voltage": round(m.input_voltage, 1),
            "input.voltage.nominal": round(p.voltage_nominal),
            "input.frequency": round(m.input_frequency, 2),
            "input.frequency.nominal": round(p.frequency_nominal),
            "input.transfer.low": round(m.transfer_low),
            "input.transfer.high": round(m.transfer_high),
            "output.voltage": round(m.output_voltage(), 1),
            "output.voltage.nominal": round(p.voltage_nominal),
            "output.frequency": (round(p.frequency_nominal if on_inverter else m.input_frequency, 2)
                                 if out_on else 0),
            "experimental.sim.load": round(m.load_w),
            "experimental.sim.mains": "on" if m.mains_on else "off",
            "experimental.sim.input.voltage": round(m.mains_voltage, 1),
            "experimental.sim.battery.health": round(m.health),
        }
        if p.outlets:
            v["outlet.count"] = p.outlets
            share = round(m.outlet_share())
            for i in range(p.outlets):
                live = out_on and m.outlets_on[i]
                pre = f"outlet.{i + 1}"
                v.update({f"{pre}.id": i + 1, f"{pre}.desc": self.outlet_desc[i],
                          f"{pre}.status": "on" if live else "off", f"{pre}.switchable": "yes",
                          f"{pre}.realpower": share if live else 0})
        return v

    def _publish(self) -> None:
        dev = self.device
        with dev.batch():
            if not self._typed:
                self.publish_driver_info()
            self.publish_status(self.model.status_tokens())
            for name, value in self._values().items():
                spec = self.rw.get(name)
                if spec is None:
                    dev.set(name, value)
                    continue
                dev.set(name, value, rw=True, string=spec.string, aux=spec.aux if spec.string else None)
                if not self._typed:
                    if spec.enums:
                        dev.set_enums(name, list(spec.enums))
                    if spec.range:
                        dev.add_range(name, *spec.range)
            if not self._typed:
                for cmd in self._commands():
                    dev.add_cmd(cmd)
                self._typed = True

    def _commands(self) -> list[str]:
        cmds = [*_SIMPLE, *_DELAYED]
        for n in range(1, self.model.p.outlets + 1):
            cmds += [f"outlet.{n}.load.{a}" for a in ("off", "on", "cycle")]
        return cmds

    # ---- commands and writes ---------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        cmd = cmd.lower()
        m = self.model
        self._catch_up()
        if cmd in _SIMPLE:
            _SIMPLE[cmd](m)
        elif cmd in _DELAYED:
            default = m.delay_shutdown if cmd == "load.off.delay" else m.delay_start
            try:
                delay = float(param) if param not in (None, "") else default
            except ValueError:
                return Status.INVALID
            if not math.isfinite(delay) or delay < 0:
                return Status.INVALID
            (m.load_off if cmd == "load.off.delay" else m.load_on)(delay)
        else:
            match = _OUTLET_CMD.match(cmd)
            if not match or not 1 <= int(match.group(1)) <= m.p.outlets:
                return Status.UNKNOWN
            m.outlet(int(match.group(1)) - 1, match.group(2))
        self._publish()
        return Status.HANDLED

    async def setvar(self, name: str, value: str) -> Status:
        spec = self.rw.get(name.lower())
        if spec is None:
            return Status.UNKNOWN
        if not spec.valid(value):
            return Status.INVALID
        self._catch_up()
        spec.apply(value)
        self._publish()
        return Status.HANDLED
