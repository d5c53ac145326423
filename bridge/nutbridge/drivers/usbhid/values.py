"""Report field values: bits <-> logical values <-> physical units (HID 1.11 §5.8, §6.2.2.7).

Report bytes include the leading report ID byte when ``field.report_id != 0``.
The conversions reproduce what NUT's usbhid-ups prints as ``Value:`` in its debug
dumps: out-of-range garbage bits are masked and the result clamped to the logical
range; physical scaling applies only with both physical limits given; then the
unit exponent, counted relative to the unit NUT reports in (volts and watts are
SI "10^7" units in HID's cm/g system, so their exponent is shifted by 7).
"""

from __future__ import annotations

from .descriptor import Field

# HID's SI-linear system counts lengths in cm and mass in g: a volt is 10^7 of the
# unit 0x00F0D121, a watt/VA 10^7 of 0xD121. Other units need no shift.
_UNIT_SHIFT = {0x00F0D121: 7, 0x0000D121: 7}


def _payload_bit(field: Field) -> int:
    return field.offset + (8 if field.report_id else 0)


def _bits(size: int) -> int:
    return (1 << size) - 1 if size > 0 else 0


def extract(field: Field, report: bytes | bytearray) -> int | None:
    """The logical value of ``field`` in ``report``; None if the report is too short to hold it."""
    start = _payload_bit(field)
    end = start + field.size
    if field.size <= 0:
        # no bits: the value is 0, clamped into the logical range like any other value
        lo, hi = field.logical_min, field.logical_max
        return min(max(0, lo), hi) if hi >= lo else 0
    if len(report) * 8 < end:
        return None
    first, last = start // 8, (end + 7) // 8
    value = (int.from_bytes(report[first:last], "little") >> (start % 8)) & _bits(field.size)
    lo, hi = field.logical_min, field.logical_max
    if hi - lo + 1 <= 0:
        return value  # nonsense range: the bits as they are
    # Keep only the bits the logical range needs (devices send garbage above them),
    # sign-extend when the range includes negatives, then clamp into the range.
    magnitude = max(hi if hi >= 0 else -(hi + 1), lo if lo >= 0 else -(lo + 1))
    signbit = 1 << magnitude.bit_length()
    mask = (signbit - 1) | (signbit if lo < 0 else 0)
    value &= mask
    if lo < 0 and value & signbit:
        value -= signbit << 1
    return min(max(value, lo), hi)


def insert(field: Field, report: bytearray, raw: int) -> None:
    """Write the logical value ``raw`` into ``report`` (two's complement, ``field.size`` bits);
    a report too short for the field is first extended with zero bytes."""
    if field.size <= 0:
        return
    start = _payload_bit(field)
    end = start + field.size
    need = (end + 7) // 8
    if len(report) < need:
        report.extend(bytes(need - len(report)))
    first = start // 8
    chunk = int.from_bytes(report[first:need], "little")
    mask = _bits(field.size) << (start % 8)
    chunk = (chunk & ~mask) | ((raw & _bits(field.size)) << (start % 8))
    report[first:need] = chunk.to_bytes(need - first, "little")


def _exponent(field: Field) -> int:
    return field.unit_exponent - _UNIT_SHIFT.get(field.unit, 0)


def _scaled(field: Field) -> bool:
    pmin, pmax = field.physical_min, field.physical_max
    return not (pmin == 0 and pmax == 0) and pmax > pmin and field.logical_max > field.logical_min


def to_physical(field: Field, raw: int) -> float:
    """NUT's logical -> physical conversion incl. the unit exponent (as the dump's ``Value:``)."""
    value = float(raw)
    if _scaled(field):
        factor = (field.physical_max - field.physical_min) / (field.logical_max - field.logical_min)
        value = (raw - field.logical_min) * factor + field.physical_min
        value = min(max(value, field.physical_min), field.physical_max)
    exp = _exponent(field)
    # divide for negative exponents: 1350 / 100 is exactly 13.5, 1350 * 0.01 is not
    return value * 10.0 ** exp if exp >= 0 else value / 10.0 ** -exp


def to_logical(field: Field, value: float) -> int:
    """Inverse of :func:`to_physical`, rounded and clamped to the logical range."""
    exp = _exponent(field)
    value = value / 10.0 ** exp if exp >= 0 else value * 10.0 ** -exp
    if _scaled(field):
        factor = (field.logical_max - field.logical_min) / (field.physical_max - field.physical_min)
        value = (value - field.physical_min) * factor + field.logical_min
    raw = round(value)
    lo, hi = field.logical_min, field.logical_max
    if hi >= lo:
        raw = min(max(raw, lo), hi)
    return raw
