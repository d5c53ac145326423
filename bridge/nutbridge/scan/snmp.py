"""SNMP scan (v1/v2c): ask each address for sysObjectID and pick the MIB as snmp-ups would.

Like nut-scanner's ``-S``: a GET of ``sysDescr.0`` and ``sysObjectID.0`` per address; an
agent that answers gets the MIB NUT's detection chooses (the same
:func:`~nutbridge.drivers.snmp.mibs.select_mib` the driver uses: sysObjectID match confirmed
by the MIB's check OID, else the check OIDs in table order). Only agents some MIB fits are
proposed: ``driver = "snmp-ups"``, ``port`` the address (``:port`` when not 161), ``desc`` the
sysDescr, ``mibs``, ``community``, and ``snmp_version = "v2c"`` when asked in v2c (snmp-ups
defaults to v1). Each probe is bounded by its timeout, without retries.
"""

from __future__ import annotations

import asyncio

from .model import Found, Option

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


def snmp_port(host: str, port: int) -> str:
    """snmp-ups's ``port`` value for an agent (brackets around IPv6 with a port)."""
    if port == 161:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def section(host: str, port: int, mib: str, descr: str | None, community: str,
            version: str) -> Found:
    """The proposal for one agent (sans-IO)."""
    opts = []
    if descr and (text := " ".join(descr.split())):  # one line: sysDescr may hold CR/LF
        opts.append(Option("desc", text))
    opts += [Option("mibs", mib), Option("community", community)]
    if version != "v1":
        opts.append(Option("snmp_version", version))
    return Found("snmp", "snmp-ups", snmp_port(host, port), tuple(opts), info={"mib": mib})


async def probe(host: str, port: int, community: str, version: str, timeout: float) -> Found | None:
    """The section for the agent at ``host:port``, or None (no answer, or no MIB fits)."""
    from pysnmp.error import PySnmpError  # type: ignore[import-untyped]

    from ..drivers.base import DeviceError
    from ..drivers.snmp.mibs import select_mib
    from ..drivers.snmp.session import Session

    # whatever one address answers (or fails to) must not end the scan of the others
    failures = (DeviceError, OSError, PySnmpError, ValueError)
    try:
        session = await Session.create(host, port, version, community, timeout=timeout, retries=0)
        first = await session.get([SYS_DESCR, SYS_OBJECT_ID])
    except failures:
        return None
    if all(v is None for v in first.values()):
        return None
    sysoid = first.get(SYS_OBJECT_ID)
    descr = first.get(SYS_DESCR)

    async def answers(oid: str) -> bool:
        try:
            return (await session.get([oid])).get(oid) is not None
        except failures:
            return False

    sysoid_text = str(sysoid.raw) if sysoid is not None and sysoid.kind == "oid" else None
    mib = await select_mib(sysoid_text, answers)
    if mib is None:
        return None
    text = None
    if descr is not None and isinstance(descr.raw, bytes):
        text = descr.raw.decode("utf-8", errors="replace").strip()
    return section(host, port, mib.name, text, community, version)


async def scan_snmp(targets: list[tuple[str, int]], *, community: str = "public", version: str = "v1",
                    timeout: float = 1.0, concurrency: int = 32) -> list[Found]:
    """Probe every (host, port), at most ``concurrency`` at once; results in target order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(host: str, port: int) -> Found | None:
        async with gate:
            return await probe(host, port, community, version, timeout)

    results = await asyncio.gather(*(one(h, p) for h, p in targets))
    return [f for f in results if f is not None]
