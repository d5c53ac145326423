"""SNMP scan (v1, v2c, v3): ask each address for sysObjectID and pick the MIB as snmp-ups would.

Like nut-scanner's ``-S``: a GET of ``sysDescr.0`` and ``sysObjectID.0`` per address; an
agent that answers gets the MIB NUT's detection chooses (the same
:func:`~nutbridge.drivers.snmp.mibs.select_mib` the driver uses: sysObjectID match confirmed
by the MIB's check OID, else the check OIDs in table order). Only agents some MIB fits are
proposed, with nut-scanner's options in its order: ``driver = "snmp-ups"``, ``port`` the
address (``:port`` when not 161), ``desc`` the value of the MIB's check OID (the model, as
nut-scanner reads it; sysDescr when the MIB has none), ``mibs``, then ``community`` (and
``snmp_version = "v2c"`` when asked in v2c; snmp-ups defaults to v1) or, for v3,
``snmp_version = "v3"`` and the USM options given (secLevel, secName, authPassword,
privPassword, authProtocol, privProtocol). nut-scanner proposes one section per MIB whose check
answers (an APC card gives ``apcc`` and ``ietf``: the same UPS twice); we propose the one
snmp-ups would pick. Each probe is bounded by its timeout, without retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .model import Found, Option

if TYPE_CHECKING:
    from ..drivers.snmp.session import V3Params

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


def snmp_port(host: str, port: int) -> str:
    """snmp-ups's ``port`` value for an agent (brackets around IPv6 with a port)."""
    if port == 161:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: nut-scanner's v3 options, in the order it writes them
V3_OPTIONS = ("secLevel", "secName", "authPassword", "privPassword", "authProtocol", "privProtocol")


def section(host: str, port: int, mib: str, descr: str | None, community: str,
            version: str, v3: Mapping[str, str] | None = None) -> Found:
    """The proposal for one agent (sans-IO); ``v3``: the USM options given, by NUT's names."""
    opts = []
    if descr and (text := " ".join(descr.split())):  # one line: sysDescr may hold CR/LF
        opts.append(Option("desc", text))
    opts.append(Option("mibs", mib))
    if version == "v3":
        given = v3 or {}
        opts.append(Option("snmp_version", "v3"))
        opts += [Option(k, given[k]) for k in V3_OPTIONS if given.get(k)]
    else:
        opts.append(Option("community", community))
        if version != "v1":
            opts.append(Option("snmp_version", version))
    return Found("snmp", "snmp-ups", snmp_port(host, port), tuple(opts), info={"mib": mib})


def _text(value: object) -> str | None:
    raw = getattr(value, "raw", None)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace").strip()
    return None if raw is None else str(raw)


async def probe(host: str, port: int, community: str, version: str, timeout: float,
                v3: Mapping[str, str] | None = None, params: V3Params | None = None) -> Found | None:
    """The section for the agent at ``host:port``, or None (no answer, or no MIB fits).
    ``v3``: the USM options as given (for the section), ``params``: the same, parsed."""
    from pysnmp.error import PySnmpError  # type: ignore[import-untyped]

    from ..drivers.base import DeviceError
    from ..drivers.snmp.mibs import check_oid, select_mib
    from ..drivers.snmp.session import Session

    # whatever one address answers (or fails to) must not end the scan of the others
    failures = (DeviceError, OSError, PySnmpError, ValueError)
    try:
        session = await Session.create(host, port, version, community, v3=params, timeout=timeout,
                                       retries=0)
        first = await session.get([SYS_DESCR, SYS_OBJECT_ID])
    except failures:
        return None
    if all(v is None for v in first.values()):
        return None
    sysoid = first.get(SYS_OBJECT_ID)
    seen: dict[str, object] = {}

    async def answers(oid: str) -> bool:
        try:
            seen[oid] = (await session.get([oid])).get(oid)
        except failures:
            return False
        return seen[oid] is not None

    sysoid_text = str(sysoid.raw) if sysoid is not None and sysoid.kind == "oid" else None
    mib = await select_mib(sysoid_text, answers)
    if mib is None:
        return None
    check = check_oid(mib)
    text = _text(seen.get(check)) if check else None
    return section(host, port, mib.name, text or _text(first.get(SYS_DESCR)), community, version, v3)


async def scan_snmp(targets: list[tuple[str, int]], *, community: str = "public", version: str = "v1",
                    timeout: float = 1.0, concurrency: int = 32,
                    v3: Mapping[str, str] | None = None) -> list[Found]:
    """Probe every (host, port), at most ``concurrency`` at once; results in target order.
    ``v3``: NUT's USM options (secLevel, secName, ...) when ``version`` is "v3"."""
    from ..drivers.snmp.session import v3_from_options

    params = v3_from_options(v3 or {}) if version == "v3" else None  # once, not per address
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(host: str, port: int) -> Found | None:
        async with gate:
            return await probe(host, port, community, version, timeout, v3, params)

    results = await asyncio.gather(*(one(h, p) for h, p in targets))
    return [f for f in results if f is not None]
