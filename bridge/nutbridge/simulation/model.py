"""Physics of the simulated UPS, independent of NUT and of the clock.

The model advances in fixed one-second ticks of simulated time, so its state
depends only on its parameters, the seed and the sequence of ``advance()`` and
command calls: the driver decides how fast simulated time runs.

Model (a line-interactive UPS):

* the battery holds ``capacity_wh * health`` watt-hours; discharging draws the
  output load divided by the inverter efficiency; recharge from empty takes
  ``recharge_s`` (half speed above 90 %);
* mains outside ``transfer_low..transfer_high`` (or absent) -> on battery;
  inside, but far from nominal, the output is boosted or trimmed;
* the output dies at 0 % charge and comes back ``delay_start`` seconds after
  the mains does (as after ``shutdown.return``);
* temperature follows the load with a five-minute time constant.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

TICK = 1.0  # simulated seconds per step
MAX_TICKS = 200_000  # per advance() call; beyond that simulated time is dropped
DEEP_TEST_END = 25.0  # % charge where a deep test or a calibration stops
QUICK_TEST_S = 10.0
OUTLET_CYCLE_S = 10.0
EFFICIENCY = 0.9


@dataclass
class Params:
    realpower_nominal: float = 900.0  # W
    power_nominal: float = 1500.0  # VA
    voltage_nominal: float = 230.0
    frequency_nominal: float = 50.0
    battery_voltage_nominal: float = 24.0
    capacity_wh: float = 150.0
    recharge_s: float = 3 * 3600.0
    outlets: int = 0
    seed: int = 0


@dataclass
class SimUPS:
    p: Params = field(default_factory=Params)
    # knobs (settable through the driver)
    load_w: float = 300.0
    mains_on: bool = True
    mains_voltage: float = 0.0  # 0: nominal
    health: float = 100.0  # % of capacity left in the battery
    charge_low: float = 10.0
    runtime_low: float = 120.0
    delay_shutdown: float = 20.0
    delay_start: float = 30.0
    transfer_low: float = 0.0  # 0: derived from the nominal voltage
    transfer_high: float = 0.0
    beeper: str = "enabled"
    # state
    now: float = 0.0
    charge: float = 100.0
    temperature: float = 25.0
    output_on: bool = True
    bypass: bool = False
    calibrating: bool = False
    test: str | None = None  # "quick" or "deep" while running
    test_left: float = 0.0
    test_result: str = "No test initiated"
    timer_shutdown: float | None = None
    timer_start: float | None = None
    after_off: str = ""  # "return", "stayoff", "reboot": what a pending shutdown does next
    restart_on_mains: bool = False
    outlets_on: list[bool] = field(default_factory=list)
    outlet_timers: dict[int, float] = field(default_factory=dict)  # outlet -> time to switch on
    input_voltage: float = 0.0
    input_frequency: float = 0.0
    _carry: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.p.seed)
        nom = self.p.voltage_nominal
        self.mains_voltage = self.mains_voltage or nom
        self.transfer_low = self.transfer_low or round(0.8 * nom)
        self.transfer_high = self.transfer_high or round(1.15 * nom)
        self.outlets_on = [True] * self.p.outlets
        self._sample_input()

    # ---- derived quantities ---------------------------------------------------------
    @property
    def mains_ok(self) -> bool:
        # decided on the undisturbed mains voltage so noise cannot make it flap
        return self.mains_on and self.transfer_low <= self.mains_voltage <= self.transfer_high

    def outlet_share(self) -> float:
        return self.load_w / self.p.outlets if self.p.outlets else self.load_w

    def output_load(self) -> float:
        """Watts drawn from the output right now."""
        if not self.output_on:
            return 0.0
        if not self.p.outlets:
            return self.load_w
        return self.outlet_share() * sum(self.outlets_on)

    @property
    def discharging(self) -> bool:
        return self.output_on and not self.bypass and (
            not self.mains_ok or self.test is not None or self.calibrating)

    @property
    def charging(self) -> bool:
        return self.mains_ok and not self.discharging and self.charge < 100.0

    def capacity_wh(self) -> float:
        return max(self.p.capacity_wh * self.health / 100.0, 1e-3)

    def runtime(self) -> float:
        """Seconds left at the present load (a small idle draw when unloaded)."""
        draw = max(self.output_load(), 0.02 * self.p.realpower_nominal) / EFFICIENCY
        return self.capacity_wh() * self.charge / 100.0 * 3600.0 / draw

    def load_pct(self) -> float:
        return 100.0 * self.output_load() / self.p.realpower_nominal

    def battery_voltage(self) -> float:
        cells = self.p.battery_voltage_nominal / 2.0
        per_cell = 1.95 + 0.2 * self.charge / 100.0  # rest voltage of a lead-acid cell
        if self.discharging:
            per_cell -= 0.1 * self.load_pct() / 100.0
        elif self.mains_ok:
            per_cell = 2.25 if self.charge >= 100.0 else per_cell + 0.1  # float / bulk
        return cells * per_cell

    def output_voltage(self) -> float:
        if not self.output_on:
            return 0.0
        nom, vin = self.p.voltage_nominal, self.input_voltage
        if not self.mains_ok or self.bypass or self.discharging:
            return vin if self.bypass else nom
        if self.boosting():
            return vin * 1.12
        if self.trimming():
            return vin * 0.89
        return vin

    def boosting(self) -> bool:
        nom = self.p.voltage_nominal
        return (self.mains_ok and self.output_on and not self.bypass
                and self.mains_voltage < self.transfer_low + (nom - self.transfer_low) / 2)

    def trimming(self) -> bool:
        nom = self.p.voltage_nominal
        return (self.mains_ok and self.output_on and not self.bypass
                and self.mains_voltage > self.transfer_high - (self.transfer_high - nom) / 2)

    def status_tokens(self) -> list[str]:
        st = ["OL" if self.mains_ok else "OB"]
        if self.discharging:
            st.append("DISCHRG")
        if self.charging:
            st.append("CHRG")
        if self.bypass:
            st.append("BYPASS")
        if self.calibrating:
            st.append("CAL")
        if not self.output_on:
            st.append("OFF")
        if self.load_pct() > 100.0:
            st.append("OVER")
        if self.trimming():
            st.append("TRIM")
        if self.boosting():
            st.append("BOOST")
        if self.charge <= self.charge_low or self.runtime() <= self.runtime_low:
            st.append("LB")
        if self.health < 50.0:
            st.append("RB")
        return st

    # ---- time -----------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Run the model for ``seconds`` of simulated time (whole ticks; the rest carries)."""
        self._carry += max(0.0, seconds)
        n = int(self._carry // TICK)
        self._carry -= n * TICK
        for _ in range(min(n, MAX_TICKS)):
            self.tick()

    def tick(self) -> None:
        dt = TICK
        self.now += dt
        self._sample_input()
        self._run_timers(dt)
        if self.bypass and not self.mains_ok and self.output_on:
            self._output_dies()  # bypass offers no battery protection
        if self.discharging:
            drawn_wh = max(self.output_load(), 0.02 * self.p.realpower_nominal) / EFFICIENCY * dt / 3600
            self.charge -= 100.0 * drawn_wh / self.capacity_wh()
            if self.charge <= 0.0:
                self.charge = 0.0
                self._output_dies()
        elif self.charging:
            rate = 100.0 / self.p.recharge_s * (0.5 if self.charge >= 90.0 else 1.0)
            self.charge = min(100.0, self.charge + rate * dt)
        self._run_tests(dt)
        target = 25.0 + 12.0 * self.load_pct() / 100.0 + (3.0 if self.charging else 0.0)
        self.temperature += (target - self.temperature) * min(1.0, dt / 300.0)

    def _sample_input(self) -> None:
        if self.mains_on:
            self.input_voltage = self.mains_voltage + self.rng.uniform(-0.8, 0.8)
            self.input_frequency = self.p.frequency_nominal + self.rng.uniform(-0.05, 0.05)
        else:
            self.rng.random()  # keep the random sequence independent of outages
            self.input_voltage = self.input_frequency = 0.0

    def _run_timers(self, dt: float) -> None:
        if self.timer_shutdown is not None:
            self.timer_shutdown -= dt
            if self.timer_shutdown <= 0:
                self.timer_shutdown = None
                self.output_on = False
                if self.after_off == "return":
                    self.restart_on_mains = True
                elif self.after_off == "reboot":
                    self.timer_start = self.delay_start
        if self.restart_on_mains:
            if self.mains_ok and self.timer_start is None:
                self.timer_start = self.delay_start
            elif not self.mains_ok:
                self.timer_start = None  # the countdown starts again when mains returns
        if self.timer_start is not None:
            self.timer_start -= dt
            if self.timer_start <= 0:
                self.timer_start = None
                if self.mains_ok or self.charge > 0:
                    self.output_on = True
                    self.restart_on_mains = False
        for n, left in list(self.outlet_timers.items()):
            if left - dt <= 0:
                del self.outlet_timers[n]
                self.outlets_on[n] = True
            else:
                self.outlet_timers[n] = left - dt

    def _run_tests(self, dt: float) -> None:
        if self.test == "quick":
            self.test_left -= dt
            if self.test_left <= 0:
                self._end_test()
        elif self.test == "deep" and self.charge <= DEEP_TEST_END:
            self._end_test()
        if self.calibrating and self.charge <= DEEP_TEST_END:
            self.calibrating = False

    def _end_test(self) -> None:
        self.test = None
        self.test_result = "Done and error" if self.health < 50.0 else "Done and passed"

    def _output_dies(self) -> None:
        self.output_on = False
        self.restart_on_mains = True  # like a real UPS: back on when mains returns
        self.calibrating = False
        if self.test is not None:
            self.test, self.test_result = None, "Aborted"

    # ---- commands ---------------------------------------------------------------------
    def set_mains(self, on: bool) -> None:
        self.mains_on = on
        if not on:  # visible at once, not only at the next tick
            self.input_voltage = self.input_frequency = 0.0

    def load_off(self, delay: float = 0.0) -> None:
        self._schedule_off(delay, "stayoff")

    def load_on(self, delay: float = 0.0) -> None:
        self.restart_on_mains = False
        if delay > 0:
            self.timer_start = delay
        else:
            self.timer_start = None
            self.output_on = True

    def shutdown(self, kind: str) -> None:
        """``return``, ``stayoff`` or ``reboot`` after ups.delay.shutdown."""
        self._schedule_off(self.delay_shutdown, kind)

    def shutdown_stop(self) -> None:
        """Cancel a pending shutdown (an output already off stays off)."""
        self.timer_shutdown = None
        self.after_off = ""

    def _schedule_off(self, delay: float, kind: str) -> None:
        self.after_off = kind
        if delay > 0:
            self.timer_shutdown = delay
            return
        self.timer_shutdown = None
        self.output_on = False
        self.timer_start = None
        self.restart_on_mains = kind == "return"
        if kind == "reboot":
            self.timer_start = self.delay_start

    def start_test(self, kind: str) -> None:
        self.test, self.test_left, self.test_result = kind, QUICK_TEST_S, "In progress"

    def stop_test(self) -> None:
        if self.test is not None:
            self.test, self.test_result = None, "Aborted"

    def beeper_cmd(self, what: str) -> None:
        if what == "toggle":
            self.beeper = "disabled" if self.beeper == "enabled" else "enabled"
        else:
            self.beeper = {"enable": "enabled", "disable": "disabled", "mute": "muted"}[what]

    def outlet(self, n: int, action: str) -> None:
        """``on``, ``off`` or ``cycle`` for outlet index ``n`` (0-based)."""
        self.outlet_timers.pop(n, None)
        self.outlets_on[n] = action == "on"
        if action == "cycle":
            self.outlet_timers[n] = OUTLET_CYCLE_S

    def timer_value(self, t: float | None) -> int:
        """NUT convention: -1 when no countdown runs."""
        return -1 if t is None else max(0, math.ceil(t))
