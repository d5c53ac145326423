"""The MIB tables and the choice among them (NUT's ``mib2nut`` list and its detection).

The MIB modules import :mod:`.mib` for the table vocabulary; this module imports them, so the
engine never needs to know which MIBs exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from ..table import Mib, check_oid
from . import apc_pdu, apcc, eaton_epdu, huawei, ietf, mge, xppc

__all__ = ["Probe", "mib_by_name", "registry", "select_mib"]

#: every MIB in NUT's detection order (vendor MIBs first, the generic RFC 1628 ones last)
_MIBS: tuple[Mib, ...] = (*apc_pdu.MIBS, *apcc.MIBS, *eaton_epdu.MIBS, *huawei.MIBS, *mge.MIBS,
                          *xppc.MIBS, *ietf.MIBS)


def registry() -> tuple[Mib, ...]:
    """All MIBs in detection order."""
    return _MIBS


def mib_by_name(name: str) -> list[Mib]:
    """The MIBs a ``mibs = name`` option allows (several entries may share a name, e.g. ietf)."""
    return [m for m in _MIBS if m.name == name]


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
