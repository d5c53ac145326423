"""A Megatec/Q1 UPS on a pty, driven by the simulated-UPS physics (:mod:`.model`).

Answers ``Q1`` (or ``QS`` in Mustek mode), ``F`` and ``I``; carries out the
commands (``Q``, ``T``, ``TL``, ``Tnn``, ``CT``, ``Sn``, ``SnRm``, ``C``) on the
model without answering them, as typical firmware does; stays silent on
anything else (or echoes it, like many clones, with ``echo_unknown``).

``protocol="voltronic"`` (CLI: ``nutbridge simulate megatec -o protocol=voltronic``)
is a Voltronic Power unit instead: ``QGS`` status, ``QPI`` -> ``(PI01``, ``QRI``,
``QMD``, ``QMF``, ``QVFW``, ``QID``, ``QBV``, ``QMOD``; commands (``BZON``/``BZOFF``,
``SON``/``SOFF``, ``CS``, ``T``, ``TL``, ``Tnn``, ``CT``, ``SnRm``, ``BATGNnn``) are
answered ``(ACK`` and anything else ``(NAK``, as that firmware does.

Scripting an outage from a test: ``sim.model.set_mains(False)``, then
``sim.model.charge = 5`` for low battery, ``sim.model.set_mains(True)``.
"""

from __future__ import annotations

import os
import re
import time

from .model import Params, SimUPS
from .pty import PtyDevice

_SHUTDOWN = re.compile(r"^S(\.[2-9]|0[0-9]|10)(?:R(\d{4}))?$")
_TEST_MINUTES = re.compile(r"^T(\d\d)$")
_V_SHUTDOWN = re.compile(r"^S(\.[2-9]|\d\d)(?:R(\d{4}))?$")  # Voltronic: up to 99 minutes
_V_PACKS = re.compile(r"^BATGN(\d\d)$")
PROTOCOLS = ("megatec", "mustek", "voltronic")


class MegatecSimulator(PtyDevice):
    terminator = b"\r"

    def __init__(self, link: str | os.PathLike[str], *, model: SimUPS | None = None,
                 speed: float = 1.0, protocol: str = "megatec", echo_unknown: bool = False,
                 mfr: str = "NUT Bridge", ups_model: str = "SimQ1", firmware: str = "SIM-1.0",
                 serial: str = "SIM0000001", **kwargs: float | int | None) -> None:
        super().__init__(link, **kwargs)  # type: ignore[arg-type]
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        self.model = model or SimUPS(Params())
        self.speed = float(speed)
        self.protocol = protocol
        self.serial = serial
        self.packs = 1  # Voltronic: battery packs in parallel (BATGNnn sets it)
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
        if self.protocol == "voltronic":
            return self.handle_voltronic(text)
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

    # ---- Voltronic ----------------------------------------------------------------------
    def qgs_line(self) -> str:
        m = self.model
        vin, vout = m.input_voltage, m.output_voltage()
        amps = m.output_load() / vout if vout else 0.0
        fout = m.p.frequency_nominal if vout else 0.0
        bits = "01" + "".join("1" if b else "0" for b in (
            not m.mains_ok, "LB" in m.status_tokens(), m.bypass, m.test_result == "Done and error",
            False, m.test is not None or m.calibrating, m.timer_shutdown is not None,
            m.beeper != "enabled", False, False))
        return (f"({vin:05.1f} {m.input_frequency:04.1f} {vout:05.1f} {fout:04.1f} {amps:05.1f} "
                f"{min(999, round(m.load_pct())):03d} {2 * vout:05.1f} ---.- "
                f"{m.battery_voltage():05.1f} ---.- {m.temperature:05.1f} {bits}")

    def voltronic_reply(self, query: str) -> str | None:
        """The reply to a Voltronic query (without the CR); None if it is not one."""
        m, p = self.model, self.model.p
        mfr, model, fw = self.ident
        cells = round(p.battery_voltage_nominal / 12)
        if query == "QGS":
            return self.qgs_line()
        if query == "QBV":
            minutes = min(999, round(m.runtime() / 60))
            return (f"({m.battery_voltage():05.1f} {cells:02d} {self.packs:02d} "
                    f"{round(m.charge):03d} {minutes:03d}")
        if query == "QMOD":
            mode = ("S" if not m.output_on else "Y" if m.bypass else "T" if m.test else
                    "L" if m.mains_ok else "B")
            return f"({mode}"
        vnom = round(p.voltage_nominal)
        static = {
            "QPI": "(PI01",
            "QRI": (f"({p.voltage_nominal:05.1f} {round(p.power_nominal / p.voltage_nominal):03d} "
                    f"{p.battery_voltage_nominal:05.1f} {p.frequency_nominal:04.1f}"),
            "QMD": (f"({model[:15]:#>15} {round(p.power_nominal):#>7} "
                    f"{round(100 * p.realpower_nominal / p.power_nominal):02d} 1/1 {vnom:03d} "
                    f"{vnom:03d} {cells:02d} 12.0"),
            "QMF": f"({mfr[:15]:#>15}",
            "QVFW": f"(VERFW:{fw[:8]:<8}",
            "QID": f"({self.serial[:20]}",
        }
        return static.get(query)

    def handle_voltronic(self, text: str) -> bytes:
        reply = self.voltronic_reply(text)
        if reply is None:
            if self.voltronic_command(text):
                self.commands.append(text)
                reply = "(ACK"
            else:
                reply = "(NAK"
        return reply.encode() + b"\r"

    def voltronic_command(self, text: str) -> bool:
        m = self.model
        if text in ("BZON", "BZOFF"):
            m.beeper_cmd("enable" if text == "BZON" else "disable")
        elif text == "SOFF":
            m.load_off()
        elif text == "SON":
            m.load_on()
        elif text == "CS":
            m.shutdown_stop()
        elif text in ("T", "TL", "CT") or _TEST_MINUTES.match(text):
            return self.command(text)
        elif match := _V_PACKS.match(text):
            if not 1 <= int(match.group(1)) <= 99:
                return False
            self.packs = int(match.group(1))
        elif match := _V_SHUTDOWN.match(text):
            off, on = match.group(1), match.group(2)
            m.delay_shutdown = 6.0 * int(off[1]) if off.startswith(".") else 60.0 * int(off)
            if on is None:
                kind = "return"
            elif int(on) == 0:
                kind = "stayoff"
            else:
                kind = "reboot"
                m.delay_start = 60.0 * int(on)
            m.shutdown(kind)
        else:
            return False
        return True
