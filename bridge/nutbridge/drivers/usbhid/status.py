"""HID status bits -> ``ups.status`` / ``ups.alarm`` (NUT's usbhid-ups status rules, drivers.md §3.5).

The subdriver tables turn report values into named internal bits (``online``, ``dischrg``,
``replacebatt``...) through their BOOL rows; this module says what those bits mean, kept apart
from the :class:`~.mapper.Mapper` that collects them so the rules read in one place and are
tested without a descriptor:

* :func:`apply_token` records one ``"bit"`` / ``"!bit"`` observation, with NUT's rule that a
  positive online/offline or (not)fullycharged clears its opposite;
* :func:`compute_status` composes the status tokens and alarm texts (the final ALARM-first join
  is the driver core's :func:`~nutbridge.drivers.base.compose_status`);
* :func:`transfer_reason` gives ``input.transfer.reason`` while a vrange/frange bit is set.

Sans-IO: plain mappings in, strings out.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from ..base import compose_status

__all__ = ["ALARMS", "apply_token", "compute_status", "transfer_reason"]

#: status bits reported as ups.alarm text, in NUT's order
ALARMS = (
    ("replacebatt", "Replace battery!"), ("shutdownimm", "Shutdown imminent!"), ("fanfail", "Fan failure!"),
    ("nobattery", "No battery installed!"), ("battvoltlo", "Battery voltage too low!"),
    ("battvolthi", "Battery voltage too high!"), ("chargerfail", "Battery charger fail!"),
    ("overheat", "Temperature too high!"), ("commfault", "Internal UPS fault!"),
    ("awaitingpower", "Awaiting power!"), ("bypassauto", "Automatic bypass mode!"),
    ("bypassman", "Manual bypass mode!"),
)

#: bits a positive observation of the other one clears (a device may report only one of a pair)
_OPPOSITE = {"online": "offline", "offline": "online", "fullycharged": "notfullycharged",
             "notfullycharged": "fullycharged"}


def apply_token(bits: MutableMapping[str, bool], token: str) -> None:
    """Record one "bit" / "!bit" token in ``bits``; a positive online/offline or
    (not)fullycharged also clears its opposite, as NUT does."""
    name = token.lstrip("!")
    if name == token:
        opposite = _OPPOSITE.get(name)
        if opposite is not None:
            bits[opposite] = False
    bits[name] = name == token


def compute_status(bits: Mapping[str, bool], charge: float | None = None,
                   options: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """NUT's ups.status / ups.alarm from the internal status bits (drivers.md §3.5).

    ``bits`` holds the bits seen so far (absent or False = not set): online, offline,
    dischrg, chrg, lowbatt, timelimitexp, shutdownimm, overload, replacebatt, trim,
    boost, bypassauto, bypassman, off, cal, overheat, commfault, depleted,
    fullycharged, notfullycharged, awaitingpower, fanfail, nobattery, battvoltlo,
    battvolthi, chargerfail, vrange, frange. ``charge`` = battery.charge (CHRG is
    only trusted between 1 and 99 % when the UPS reports no Fully* state).
    ``options``: onlinedischarge_calibration / onlinedischarge_onbattery (flags).
    Returns (status, alarm or None); status starts with "ALARM" while an alarm is on.
    """
    opts = options or {}
    on = bits.get
    tokens: list[str] = []
    add = tokens.append  # duplicates are dropped by compose_status, keeping the first

    # CAL first: calibration looks like OB to many firmwares, say it is a drill first
    if on("cal"):
        add("CAL")
    if not on("online"):
        if on("offline") or on("dischrg"):
            add("OB")
    elif on("offline"):
        add("OB")
    elif on("dischrg"):
        # OL+DISCHRG: calibration or odd firmware (CyberPower UT, APC BK650M2); user hints decide
        cal_hint = _flag(opts, "onlinedischarge_calibration")
        ob_hint = _flag(opts, "onlinedischarge_onbattery")
        if cal_hint:
            add("CAL")
        if ob_hint:
            add("OB")
        if not cal_hint and not ob_hint:
            add("OL")
    else:
        add("OL")
    if on("dischrg") and not on("depleted"):
        add("DISCHRG")
    # CHRG: trust it when the UPS says "not full"; without Fully* info only between 1 and 99 %
    plausible = charge is not None and 0 < int(charge) < 100
    if on("chrg") and (on("notfullycharged") or (not on("fullycharged") and plausible)):
        add("CHRG")
    if on("lowbatt") or on("timelimitexp") or on("shutdownimm"):
        add("LB")
    if on("overload"):
        add("OVER")
    if on("replacebatt") or on("nobattery"):
        add("RB")
    if on("trim"):
        add("TRIM")
    if on("boost"):
        add("BOOST")
    if on("bypassauto") or on("bypassman"):
        add("BYPASS")
    if on("off"):
        add("OFF")
    return compose_status(tokens, (text for bit, text in ALARMS if on(bit)))


def _flag(opts: Mapping[str, str], name: str) -> bool:
    """ups.conf flags are present with an empty value (or "true"/"yes"/"1")."""
    if name not in opts:
        return False
    return opts[name].strip().lower() not in ("0", "no", "false", "off")


def transfer_reason(bits: Mapping[str, bool]) -> str | None:
    """``input.transfer.reason`` while the UPS says its input is out of range, else None."""
    if bits.get("vrange"):
        return "input voltage out of range"
    if bits.get("frange"):
        return "input frequency out of range"
    return None
