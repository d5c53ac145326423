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

The device protocols of nutdrv_qx (``protocol=zinto|hunnox|ablerex|gtec|masterguard``)
are simulated too, from their descriptions in the driver's modules: ``zinto`` answers
``FW?`` instead of ``I``; ``hunnox`` also ``BL`` (battery charge); ``ablerex`` adds the
binary ``Q5`` and ``At`` and ``TR`` and gives output ratings in ``F``; ``gtec`` answers
``Q4`` (status letters) instead of ``Q1``; ``masterguard`` answers ``WH``, ``Q3``,
``GS,00``, ``GBS,00``, ``GSN,00``, ``DRC,00``, ``MSO``, ``PNV`` (and ``Q1``, not ``I``)
and carries out its commands (``TUD,00``, ``FOFF``/``FON``, ``SS---1,00``, ``PNV=230``...).
Commands are not answered, as on Megatec units.

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
_MG_SHUTDOWN = re.compile(r"^S(\.[0-9]|\d\d)(?:R(\d{4}))?$")  # Masterguard: R = seconds
_MG_PACKS = re.compile(r"^SS--(\d)-,(\d\d)$")
_MG_VOLTS = re.compile(r"^PNV=(\d{3})$")
PROTOCOLS = ("megatec", "mustek", "voltronic", "zinto", "hunnox", "ablerex", "gtec", "masterguard")
#: Masterguard's output voltages (MSO) and the model it claims to be (WH's model field)
MG_VOLTAGES = (220, 230, 240)
MG_MODEL = "A 1000  + 0 Bat Pack"


def _no_cr(value: int, size: int) -> bytes:
    """``value`` big-endian in ``size`` bytes, nudged up until no byte is a CR: a CR in a
    binary reply would end the line early (real firmware has the same flaw)."""
    while (raw := max(0, value).to_bytes(size, "big")).count(0x0D):
        value += 1
    return raw


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
        self.mg_packs = 0  # Masterguard: external battery packs (SS--n-,00 sets it)
        self.mg_volts = 230  # Masterguard: output.voltage.nominal (PNV=nnn sets it)
        self.mg_bypass = False  # Masterguard: FOFF/FON
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
        if self.protocol in ("zinto", "hunnox", "ablerex", "gtec", "masterguard"):
            reply = self.device_reply(text)
            if reply is not None:
                return reply
            if self.device_command(text):
                self.commands.append(text)
            return None
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

    # ---- nutdrv_qx's device protocols ---------------------------------------------------
    def device_reply(self, text: str) -> bytes | None:
        """The reply of a zinto/hunnox/ablerex/gtec/masterguard unit; None if ``text`` is
        not one of its queries."""
        proto = self.protocol
        if text == "Q1" and proto != "gtec":
            return self.status_line()
        if text == "F" and proto != "masterguard":
            return self.ablerex_rating() if proto == "ablerex" else self.rating_line()
        if text == "FW?" and proto in ("zinto", "hunnox"):
            return self.info_line()
        if text == "I" and proto in ("ablerex", "gtec"):
            return self.info_line()
        if text == "BL" and proto == "hunnox":
            return f"BL{round(self.model.charge)}\r".encode()
        if proto == "ablerex":
            return self.ablerex_reply(text)
        if text == "Q4" and proto == "gtec":
            return self.q4_line()
        if proto == "masterguard":
            reply = self.masterguard_reply(text)
            return None if reply is None else reply.encode() + b"\r"
        return None

    def ablerex_rating(self) -> bytes:
        p = self.model.p
        amps = round(p.power_nominal / p.voltage_nominal)
        return (f"#{p.voltage_nominal:05.1f} {amps:03d} {p.battery_voltage_nominal:05.1f} "
                f"{p.frequency_nominal:04.1f}\r").encode()

    def ablerex_reply(self, text: str) -> bytes | None:
        m, p = self.model, self.model.p
        if text == "Q5":
            vout = m.output_voltage()
            fout = round(10 * p.frequency_nominal) if vout else 0
            amps = round(10 * m.output_load() / vout) if vout else 0
            vb = round(m.battery_voltage() * 1200 / p.battery_voltage_nominal)
            err = 1 if m.test_result == "Done and error" else 0
            return (b"(" + _no_cr(fout, 2) + bytes(4) + _no_cr(vb, 2) + _no_cr(1050, 2)
                    + bytes(2) + _no_cr(err, 2) + _no_cr(amps, 2) + bytes(4) + b"\r")
        if text == "At":
            return b"(" + _no_cr(round(m.runtime()), 4) + b"\r"
        if text == "TR":  # the result codes are not documented: these four are invented
            code = {"Done and passed": "PASS", "Done and error": "FAIL",
                    "In progress": "BUSY"}.get(m.test_result, "NONE")
            return f"#{code}\r".encode()
        return None

    def q4_line(self) -> bytes:
        m = self.model
        vin, vout = m.input_voltage, m.output_voltage()
        if m.mains_ok:
            self._fault_voltage = vin
        letters = ""
        if m.output_on:
            letters = "A" if not m.mains_ok else "C" if (m.bypass or m.boosting()) else "M"
        tokens = m.status_tokens()
        letters += "B" if "LB" in tokens else ""
        letters += "E" if m.test is not None else "J" if m.test_result == "Done and error" \
            else "I" if m.test_result == "Done and passed" else ""
        letters += "F" if m.timer_shutdown is not None else ""
        return (f"({vin:05.1f} {vin:05.1f} {vin:05.1f} {self._fault_voltage:05.1f} "
                f"{vout:05.1f} 000 {min(999, round(m.load_pct())):03d} "
                f"{m.input_frequency:04.1f} 000 000 {m.battery_voltage():05.1f} "
                f"{m.temperature:04.1f} {letters}\r").encode()

    def masterguard_reply(self, text: str) -> str | None:
        m, p = self.model, self.model.p
        cells = round(6 * p.battery_voltage_nominal / 12)
        cell_now = m.battery_voltage() / cells
        if text == "WH":
            return (f"(00 10.06 03.09 {MG_MODEL:<30} {self.mg_packs} "
                    f"{round(p.voltage_nominal):03d} {p.frequency_nominal:05.2f} {cells:03d} "
                    f"02.00 006.00 012.00 018 10 40 160 276 "
                    f"{p.frequency_nominal - 3:05.2f} {p.frequency_nominal + 3:05.2f}")
        if text == "Q3":
            if m.mains_ok:
                self._fault_voltage = m.input_voltage
            minutes, seconds = divmod(min(999 * 60 + 59, round(m.runtime())), 60)
            test = ("001" if m.test is not None else "011" if m.test_result == "Done and error"
                    else "010" if m.test_result == "Done and passed" else "000")
            b = "".join("1" if x else "0" for x in (
                not m.mains_ok, "LB" in m.status_tokens(), self.mg_bypass or m.bypass,
                m.test_result == "Done and error", True, m.test is not None,
                m.timer_shutdown is not None, False))
            return (f"(00 {m.input_voltage:05.1f} {self._fault_voltage:05.1f} "
                    f"{m.output_voltage():05.1f} {min(999, round(m.load_pct())):03d} "
                    f"{m.input_frequency:04.1f} {cell_now:05.2f} {m.temperature:04.1f} "
                    f"{minutes:03d}.{seconds:02d} {round(m.charge):03d} {b} 00000{test}")
        if text == "GS,00":
            return f"(00,00 {self.mg_packs} {1 if m.beeper == 'enabled' else 0}"
        if text == "GBS,00":
            return f"(00,{round(m.charge):03d} 0017 0000 0708 0712 0994 115 {cell_now:05.2f}"
        if text == "GSN,00":
            return f"(00,SSN={self.serial[:6]:<11} {self.serial[-4:]:>4}"
        if text == "DRC,00":
            return "(00,0012:03:04:05"
        if text == "MSO":
            return "(" + " ".join(str(v) for v in MG_VOLTAGES)
        if text == "PNV":
            return f"(PNV={self.mg_volts:03d}"
        return None

    def device_command(self, text: str) -> bool:
        """Carry out a device protocol's command (none is answered)."""
        if self.protocol != "masterguard":
            return self.command(text)
        m = self.model
        if match := _MG_SHUTDOWN.match(text):
            off, on = match.group(1), match.group(2)
            m.delay_shutdown = 6.0 * int(off[1]) if off.startswith(".") else 60.0 * int(off)
            if on is None:
                kind = "stayoff"
            else:
                kind = "reboot"
                m.delay_start = float(int(on))
            m.shutdown(kind)
        elif text == "TUD,00":
            m.start_test("deep")
        elif text in ("FOFF", "FON"):
            self.mg_bypass = text == "FOFF"
        elif text in ("SS---1,00", "SS---0,00"):
            m.beeper_cmd("enable" if text[5] == "1" else "disable")
        elif text == "FCLR,00":
            pass
        elif match := _MG_PACKS.match(text):
            self.mg_packs = int(match.group(1))
        elif match := _MG_VOLTS.match(text):
            if int(match.group(1)) not in MG_VOLTAGES:
                return False
            self.mg_volts = int(match.group(1))
        else:
            return self.command(text)
        return True
