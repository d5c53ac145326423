"""A real python-zeroconf browser for ``_nut._tcp.local.`` (tests of the bridge's advertisement).

Multicast works on the test machines (the host and the sid chroot share its network):
a bridge advertising on the host's LAN address is seen by a browser in another process
on the same host, as IP_MULTICAST_LOOP is on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .realnut import require

SERVICE_TYPE = "_nut._tcp.local."


def lan_ipv4() -> str:
    """The IPv4 address this host sends multicast from (skips or, in CI, fails without one).

    Asked from the routing table rather than ifaddr, which Home Assistant's test
    plugin replaces with a fake adapter.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("224.0.0.251", 5353))  # UDP: nothing is sent
            addr = str(s.getsockname()[0])
        except OSError:
            addr = "127.0.0.1"
    ip = ipaddress.IPv4Address(addr)
    require("a non-loopback IPv4 route for multicast (mDNS tests)", not (ip.is_loopback or ip.is_unspecified))
    return addr


class NutBrowser:
    """``async with NutBrowser() as b: info = await b.find(lambda i: i.port == port)``."""

    def __init__(self, interface: str | None = None) -> None:
        self.interface = interface or lan_ipv4()
        self.present: set[str] = set()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> NutBrowser:
        self.azc = AsyncZeroconf(interfaces=[self.interface])
        self.browser = AsyncServiceBrowser(self.azc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.browser.async_cancel()
        await self.azc.async_close()

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            self.present.discard(name)
        else:
            self.present.add(name)
        self._changed.set()

    async def _wait_change(self, deadline: float) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass

    async def services(self) -> list[AsyncServiceInfo]:
        """Resolved infos of the services present now."""
        out = []
        for name in sorted(self.present):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if await info.async_request(self.azc.zeroconf, 1000):
                out.append(info)
        return out

    async def find(self, match: Callable[[AsyncServiceInfo], bool], timeout: float = 8.0) -> AsyncServiceInfo:
        deadline = time.monotonic() + timeout
        while True:
            for info in await self.services():
                if match(info):
                    return info
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching {SERVICE_TYPE} service in {timeout} s "
                                   f"(present: {sorted(self.present)})")
            await self._wait_change(deadline)

    async def gone(self, name: str, timeout: float = 3.0) -> None:
        """Wait for the service's goodbye (without one it lingers for its TTL: minutes)."""
        deadline = time.monotonic() + timeout
        while name in self.present:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{name} still advertised after {timeout} s")
            await self._wait_change(deadline)
