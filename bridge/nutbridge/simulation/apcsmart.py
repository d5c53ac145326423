"""A Smart-UPS on a pty, speaking the APC Smart protocol, driven by :class:`SimUPS`.

Enough of the protocol for NUT's ``apcsmart`` and our driver: the handshake
(``Y``, ``b``, ``a``, ``^A``, ``^Z``), every variable of the driver table, the
``-`` "next value" cycling of settings (and ``-`` + 8 characters for the
string settings ``c`` / ``x``), the instant commands (``Z``, ``^N`` and ``K``
only act when sent twice, 1-5 s apart, like the real thing) and alert
characters when the status changes (:meth:`ApcSmartSim.push_alerts`).

External battery packs (``>`` count, ``<`` bad ones, ``nnn`` each) are answered as a
SmartCell XL model with ``packs=(count, bad)``; by default the model has none and
answers ``NA`` to both, as a Smart-UPS without the XL connector does. With
``packs_choices`` the ``^Z`` capabilities enumerate ``>`` and the count is a setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

from .model import Params, SimUPS
from .pty import PtyDevice

CAPS: dict[str, list[str]] = {
    "u": ["253", "264", "271", "280"],
    "l": ["196", "188", "208", "204"],
    "e": ["00", "15", "50", "90"],
    "o": ["230", "240", "220", "225"],
    "s": ["H", "M", "L", "L"],
    "q": ["02", "05", "07", "10"],
    "p": ["020", "180", "300", "600"],
    "k": ["0", "T", "L", "N"],
    "r": ["000", "060", "180", "300"],
    "E": ["336", "168", "ON ", "OFF"],
}
LOCALE = "I"
FIRMWARE = "925.T2.I"
CMDCHARS = "\x01\x0e\x1a-9<>ABCDEFGKLMNOPQRSUWXYZ^abcefgjklmnopqrsuxy"
REPEATED = frozenset("Z\x0eK")  # act only on the second byte within 1..5 s


def caps_reply(caps: dict[str, list[str]] = CAPS) -> str:
    out = ["#"]
    for cmd, vals in caps.items():
        width = len(vals[0])
        loc = "4" if cmd in "eqpkrsE" else LOCALE
        out.append(f"{cmd}{loc}{len(vals)}{width}{''.join(vals)}")
    return "".join(out)


class ApcSmartSim(PtyDevice):
    terminator = None

    def __init__(self, link: str | os.PathLike[str], ups: SimUPS | None = None, *,
                 speed: float = 1.0, delay_per_byte: float = 0.0, seed: int | None = 0,
                 packs: tuple[int, int] | None = None, packs_choices: list[str] | None = None
                 ) -> None:
        super().__init__(link, delay_per_byte=delay_per_byte, seed=seed)
        self.packs = packs  # (external packs, bad packs); None: no XL connector ("NA")
        # a model whose ^Z enumerates ">" (the count is then a setting stepped with "-")
        self.caps = {**CAPS, ">": packs_choices} if packs_choices else CAPS
        self.ups = ups or SimUPS(Params(voltage_nominal=230.0))
        self.speed = speed
        self.settings = {cmd: vals[0] for cmd, vals in self.caps.items()}
        if packs is not None and ">" in self.settings:
            self.settings[">"] = f"{packs[0]:03d}"
        self.settings["p"], self.settings["r"] = "020", "000"
        for var in ("l", "u", "q"):
            self._apply_setting(var)
        self.strings = {"c": "UPS_IDEN", "x": "01/02/20"}
        self.smart = False
        self.old_firmware = False  # True: no "a" / "^Z" (pre-1998 Smart-UPS)
        self._last_var: str | None = None
        self._string_target: str | None = None  # "c"/"x" while collecting 8 chars
        self._string_buf = ""
        self._pending: tuple[str, float] | None = None
        self._last_tick = time.monotonic()
        self._announced = self.tokens()
        self.commands: list[str] = []  # actions carried out (for tests)
        self._ticker: asyncio.Task[None]

    async def start(self) -> None:
        await super().start()
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        await super().stop()

    async def _tick_loop(self) -> None:
        # a real UPS announces a status change at once, not only when asked
        while True:
            await asyncio.sleep(0.5)
            self._advance()
            if self.plugged:
                self.push_alerts()

    # ---- physics ------------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        self.ups.advance((now - self._last_tick) * self.speed)
        self._last_tick = now

    def tokens(self) -> list[str]:
        t = self.ups.status_tokens()
        return ["OFF"] if "OFF" in t else t

    def status_byte(self) -> int:
        bits = {"CAL": 0x01, "TRIM": 0x02, "BOOST": 0x04, "OL": 0x08, "OB": 0x10,
                "OVER": 0x20, "LB": 0x40, "RB": 0x80}
        return sum(bits.get(t, 0) for t in set(self.tokens()))

    def push_alerts(self) -> bytes:
        """Send the alert characters for status changes since the last call."""
        old, new = set(self._announced), set(self.tokens())
        out = ""
        if "OB" in new and "OB" not in old:
            out += "!"
        if "OL" in new and "OL" not in old:
            out += "$"
        if "LB" in new and "LB" not in old:
            out += "%"
        if "LB" in old and "LB" not in new:
            out += "+"
        if "RB" in new and "RB" not in old:
            out += "#"
        if "OVER" in new and "OVER" not in old:
            out += "?"
        if "OVER" in old and "OVER" not in new:
            out += "="
        self._announced = sorted(new)
        if out:
            self.send_unsolicited(out.encode())
        return out.encode()

    # ---- protocol -------------------------------------------------------------------
    def handle(self, data: bytes) -> bytes | None:
        ch = data.decode("latin-1")
        if self._string_target is not None:
            self._string_buf += ch
            if len(self._string_buf) < 8:
                return None
            self.strings[self._string_target] = self._string_buf.rstrip()
            self._string_target, self._string_buf = None, ""
            return b"OK\r\n"
        self._advance()
        reply = self.answer(ch)
        return None if reply is None else reply.encode("latin-1") + b"\r\n"

    def answer(self, ch: str) -> str | None:
        u = self.ups
        if ch == "Y":
            self.smart = True
            return "SM"
        if ch == "R":
            self.smart = False
            return "BYE"
        if ch in REPEATED:
            now = time.monotonic()
            prev = self._pending
            self._pending = (ch, now)
            if prev is None or prev[0] != ch or not 1.0 <= now - prev[1] <= 5.0:
                return None  # the first byte of a pair is not answered
            self._pending = None
            self.commands.append(ch)
            if ch == "Z":
                u.load_off()
            elif ch == "K":
                u.shutdown("stayoff")
            else:
                u.load_on()
            return "OK"
        self._pending = None
        if ch == "-":
            var = self._last_var
            if var in self.strings:
                self._string_target, self._string_buf = var, ""
                return None
            if var not in self.caps:
                return "NO"
            vals = self.caps[var]
            cur = self.settings[var]
            self.settings[var] = vals[(vals.index(cur) + 1) % len(vals)] if cur in vals else vals[0]
            self._apply_setting(var)
            return "OK"
        self._last_var = ch
        if self.old_firmware and ch in "a\x1a9":  # nor input.quality
            return "NA"
        if ch in self.settings:
            return self.settings[ch]
        if ch in self.strings:
            return self.strings[ch]
        simple = {
            "\x01": "Smart-UPS 1500", "b": FIRMWARE, "n": "QS0123456789",
            "m": "01/02/20", "a": f"3.!$%+?=#|.{CMDCHARS}", "\x1a": caps_reply(self.caps),
            "g": f"{u.p.battery_voltage_nominal:03.0f}", "X": "NO",
        }
        if ch in simple:
            return simple[ch]
        if ch in "><":
            return "NA" if self.packs is None else f"{self.packs[ch == '<']:03d}"
        measured: dict[str, Callable[[], str]] = {
            "Q": lambda: f"{self.status_byte():02X}",
            "f": lambda: f"{u.charge:05.1f}",
            "B": lambda: f"{u.battery_voltage():05.2f}",
            "j": lambda: f"{int(u.runtime() // 60):04d}:",
            "L": lambda: f"{u.input_voltage:05.1f}",
            "M": lambda: f"{u.input_voltage:05.1f}",
            "N": lambda: f"{u.input_voltage:05.1f}",
            "F": lambda: f"{u.input_frequency:05.2f}",
            "O": lambda: f"{u.output_voltage():05.1f}",
            "P": lambda: f"{u.load_pct():05.1f}",
            "C": lambda: f"{u.temperature:05.1f}",
            "9": lambda: "FF" if u.mains_ok else "00",
            "G": lambda: "O" if u.mains_ok else "L",
        }
        if ch in measured:
            return measured[ch]()
        action = {"S": "return", "D": "cal", "A": "panel", "U": "failure", "W": "test",
                  "^": "bypass"}.get(ch)
        if action is None:
            return "NA"
        self.commands.append(ch)
        if ch == "S":
            if u.mains_ok:
                return "NA"  # soft shutdown only works on battery
            u.shutdown("return")
        elif ch == "W":
            if u.test is None:
                u.start_test("quick")
            else:
                u.stop_test()
        elif ch == "D":
            u.calibrating = not u.calibrating
        elif ch == "^":
            u.bypass = not u.bypass
            return "BYP" if u.bypass else "INV"
        return "OK"

    def _apply_setting(self, var: str) -> None:
        v = self.settings[var].strip()
        u = self.ups
        if var == "p":
            u.delay_shutdown = float(v)
        elif var == "r":
            u.delay_start = float(v)
        elif var == "l":
            u.transfer_low = float(v)
        elif var == "u":
            u.transfer_high = float(v)
        elif var == "q":
            u.runtime_low = float(v) * 60
