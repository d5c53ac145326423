"""A Megatec/Q1 UPS on a pty, driven by the simulated-UPS physics (:mod:`..drivers.sim_model`).

Answers ``Q1`` (or ``QS`` in Mustek mode), ``F`` and ``I``; carries out the
commands (``Q``, ``T``, ``TL``, ``Tnn``, ``CT``, ``Sn``, ``SnRm``, ``C``) on the
model without answering them, as typical firmware does; stays silent on
anything else (or echoes it, like many clones, with ``echo_unknown``).

Scripting an outage from a test: ``sim.model.set_mains(False)``, then
``sim.model.charge = 5`` for low battery, ``sim.model.set_mains(True)``.
"""

from __future__ import annotations

import os
import re
import time

from ..drivers.sim_model import Params, SimUPS
from .pty import PtyDevice

_SHUTDOWN = re.compile(r"^S(\.[2-9]|0[0-9]|10)(?:R(\d{4}))?$")
_TEST_MINUTES = re.compile(r"^T(\d\d)$")


class MegatecSimulator(PtyDevice):
    terminator = b"\r"

    def __init__(self, link: str | os.PathLike[str], *, model: SimUPS | None = None,
                 speed: float = 1.0, protocol: str = "megatec", echo_unknown: bool = False,
                 mfr: str = "NUT Bridge", ups_model: str = "SimQ1", firmware: str = "SIM-1.0",
                 **kwargs: float | int | None) -> None:
        super().__init__(link, **kwargs)  # type: ignore[arg-type]
        self.model = model or SimUPS(Params())
        self.speed = speed
        self.protocol = protocol
        self.echo_unknown = echo_unknown
        self.ident = (mfr, ups_model, firmware)
        self.commands: list[str] = []  # the commands (not queries) carried out, in order
        self._last = time.monotonic()
        self._fault_voltage = self.model.input_voltage

    def _catch_up(self) -> None:
        now = time.monotonic()
        self.model.advance((now - self._last) * self.speed)
        self._last = now

    # ---- replies ----------------------------------------------------------------------
    def status_line(self) -> bytes:
        m = self.model
        vin = m.input_voltage
        if m.mains_ok:
            self._fault_voltage = vin
        low = "LB" in m.status_tokens()
        bits = "".join("1" if b else "0" for b in (
            not m.mains_ok, low, m.mains_ok and (m.bypass or m.boosting() or m.trimming()),
            m.test_result == "Done and error", True, m.test is not None or m.calibrating,
            m.timer_shutdown is not None, m.beeper == "enabled"))
        line = (f"({vin:05.1f} {self._fault_voltage:05.1f} {m.output_voltage():05.1f} "
                f"{min(999, round(m.load_pct())):03d} {m.input_frequency:04.1f} "
                f"{m.battery_voltage():04.1f} {m.temperature:04.1f} {bits}\r")
        return line.encode()

    def rating_line(self) -> bytes:
        p = self.model.p
        return (f"#{p.voltage_nominal:05.1f} 000 {p.battery_voltage_nominal:05.1f} "
                f"{p.frequency_nominal:04.1f}\r").encode()

    def info_line(self) -> bytes:
        mfr, model, fw = self.ident
        return f"#{mfr[:15]:<15} {model[:10]:<10} {fw[:10]:<10}\r".encode()

    def handle(self, data: bytes) -> bytes | None:
        self._catch_up()
        text = data.rstrip(b"\r").decode("ascii", "replace")
        status_query = "QS" if self.protocol == "mustek" else "Q1"
        if text == status_query:
            return self.status_line()
        if text == "F":
            return self.rating_line()
        if text == "I":
            return self.info_line()
        if self.command(text):
            self.commands.append(text)
            return None
        return data if self.echo_unknown else None

    # ---- commands -----------------------------------------------------------------------
    def command(self, text: str) -> bool:
        m = self.model
        if text == "Q":
            m.beeper_cmd("toggle")
        elif text == "T":
            m.start_test("quick")
        elif text == "TL":
            m.start_test("deep")
        elif text == "CT":
            m.stop_test()
        elif text == "C":
            m.shutdown_stop()
            if not m.output_on:
                m.load_on()
        elif match := _TEST_MINUTES.match(text):
            m.start_test("quick")
            m.test_left = 60.0 * int(match.group(1))
        elif match := _SHUTDOWN.match(text):
            off, on = match.group(1), match.group(2)
            off_s = 6.0 * int(off[1]) if off.startswith(".") else 60.0 * int(off)
            if on is None:
                kind = "return"  # back on when the mains is
            elif int(on) == 0:
                kind = "stayoff"
            else:
                kind = "reboot"
                m.delay_start = 60.0 * int(on)
            m.delay_shutdown = off_s
            m.shutdown(kind)
        else:
            return False
        return True
