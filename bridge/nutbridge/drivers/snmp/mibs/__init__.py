"""The MIB tables and the choice among them (NUT's ``mib2nut`` list and its detection).

The MIB modules import only :mod:`..table` (the vocabulary) and never this package; it imports
them, in NUT's detection order. So the imports run one way (no circle), and neither the
vocabulary nor :mod:`..mapper` needs to know which MIBs exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from ..table import Mib
from . import apc_pdu, apcc, eaton_epdu, huawei, ietf, mge, xppc

__all__ = ["Probe", "check_oid", "mib_by_name", "registry", "select_mib"]

#: every MIB in NUT's detection order (vendor MIBs first, the generic RFC 1628 ones last)
_MIBS: tuple[Mib, ...] = (*apc_pdu.MIBS, *apcc.MIBS, *eaton_epdu.MIBS, *huawei.MIBS, *mge.MIBS,
                          *xppc.MIBS, *ietf.MIBS)


def registry() -> tuple[Mib, ...]:
    """All MIBs in detection order."""
    return _MIBS


def mib_by_name(name: str) -> list[Mib]:
    """The MIBs a ``mibs = name`` option allows (several entries may share a name, e.g. ietf)."""
    return [m for m in _MIBS if m.name == name]


def check_oid(mib: Mib) -> str | None:
    """The OID whose presence confirms ``mib`` (auto_check, else its model row)."""
    if mib.auto_check:
        return mib.auto_check
    for var in ("ups.model", "device.model"):
        for row in mib.rows:
            if row.var == var and row.oid and "%i" not in row.oid:
                return row.oid
    return None


#: does this OID answer? (a GET that returns a value)
Probe: TypeAlias = Callable[[str], Awaitable[bool]]


async def select_mib(sysobjectid: str | None, probe: Probe, mibs: str = "auto") -> Mib | None:
    """Pick the MIB like NUT 2.8: for ``mibs=auto`` the first MIB whose ``sysoid`` equals the
    agent's sysObjectID *and* whose check OID answers; then (or for a named ``mibs``) the classic
    probe, in table order, of each candidate's check OID. The check OID is ``auto_check``, or the
    MIB's ``ups.model``/``device.model`` row when it has none. None: nothing fits."""
    candidates = list(_MIBS) if mibs == "auto" else mib_by_name(mibs)
    sysoid = (sysobjectid or "").lstrip(".")
    if mibs == "auto" and sysoid:
        for mib in candidates:
            if any(s.lstrip(".") == sysoid for s in mib.sysoid):
                check = check_oid(mib)
                if check is None or await probe(check):
                    return mib
    for mib in candidates:
        check = check_oid(mib)
        if check and await probe(check):
            return mib
    return None
