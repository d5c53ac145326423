"""NUT server scan: ``LIST UPS`` on TCP 3493 (or another port) over an address range, or on
the servers mDNS (``_nut._tcp``) announces.

Each UPS found becomes nut-scanner's ``-O`` section: ``driver = "dummy-ups"`` with ``port =
"ups@host[:port]"`` (the port only when not 3493; IPv6 hosts in brackets), which NUT's
dummy-ups runs as a repeater and the bridge as its repeater driver. Probes run at most
``concurrency`` at a time, each bounded by ``timeout``, read-only and without credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..client import NutClient, NutError
from .model import Found

DEFAULT_PORT = 3493
SERVICE_TYPE = "_nut._tcp.local."


def nut_port(ups: str, host: str, port: int) -> str:
    """The repeater's ``port`` value for ``ups`` on ``host:port`` (nut-scanner's spelling)."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{ups}@{h}" if port == DEFAULT_PORT else f"{ups}@{h}:{port}"


def sections(host: str, port: int, listing: Iterable[tuple[str, ...]]) -> list[Found]:
    """One section per ``LIST UPS`` item (``(name, description)``) of ``host:port`` (sans-IO)."""
    out = []
    for item in listing:
        if not item:
            continue
        info = {"server": f"{host}:{port}", "ups": item[0]}
        if len(item) > 1:
            info["desc"] = item[1]
        out.append(Found("nut", "dummy-ups", nut_port(item[0], host, port), info=info))
    return out


async def probe(host: str, port: int, timeout: float) -> list[Found]:
    """The UPSes of the upsd at ``host:port``; empty when nothing answers as a upsd in time."""
    try:
        async with asyncio.timeout(timeout):
            async with NutClient(host, port, timeout=timeout) as client:
                listing = await client.list_items("UPS")
    except (OSError, NutError, TimeoutError, ValueError):
        return []
    return sections(host, port, listing)


async def scan_hosts(targets: list[tuple[str, int]], *, timeout: float = 5.0,
                     concurrency: int = 32) -> list[Found]:
    """Probe every (host, port), at most ``concurrency`` at once; results in target order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(host: str, port: int) -> list[Found]:
        async with gate:
            return await probe(host, port, timeout)

    results = await asyncio.gather(*(one(h, p) for h, p in targets))
    return [f for r in results for f in r]


async def browse_mdns(duration: float) -> list[tuple[str, int]]:
    """(address, port) of every ``_nut._tcp`` service announced within ``duration`` seconds
    (python-zeroconf; RuntimeError if it is not installed)."""
    try:
        from zeroconf import ServiceStateChange, Zeroconf
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf
    except ImportError as exc:
        raise RuntimeError(f"mDNS scan needs python-zeroconf: {exc}") from None
    names: list[str] = []

    def changed(zeroconf: Zeroconf, service_type: str, name: str,
                state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added and name not in names:
            names.append(name)

    try:
        azc = AsyncZeroconf()
    except OSError as exc:  # no multicast-capable interface
        raise RuntimeError(f"mDNS scan: {exc}") from None
    browser = AsyncServiceBrowser(azc.zeroconf, SERVICE_TYPE, handlers=[changed])
    try:
        await asyncio.sleep(duration)
        out: list[tuple[str, int]] = []
        for name in names:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(azc.zeroconf, 3000) or info.port is None:
                continue
            addrs = info.parsed_scoped_addresses()
            # one server, one set of sections: its first IPv4 address, else its first one
            addr = next((a for a in addrs if ":" not in a), addrs[0] if addrs else None)
            if addr is not None and (addr, info.port) not in out:
                out.append((addr, info.port))
        return out
    finally:
        await browser.async_cancel()
        await azc.async_close()
