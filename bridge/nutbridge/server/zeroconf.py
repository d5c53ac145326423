"""Zeroconf (mDNS / DNS-SD) advertisement of the NUT service as ``_nut._tcp.local.``.

Only a bridge that listens on a non-loopback address is advertised: the secure
default (127.0.0.1) is unreachable from the LAN, so announcing it would only
mislead. The TXT ``id`` is the state directory's server id, so a client (Home
Assistant) recognises the bridge after it moved to another address; ``tls_sha256`` (when
upsd offers STARTTLS) is the SHA-256 of its certificate's DER, which a client pins before
it sends a password. python-zeroconf is optional (the ``zeroconf`` extra) and imported
only when something is advertised. See docs/discovery.md and docs/tls.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger("nutbridge")

SERVICE_TYPE = "_nut._tcp.local."
PROTOCOL_VERSION = "1.3"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _usable(ip: IPAddress) -> bool:
    # IPv6 link-local addresses mean nothing without their interface scope.
    return not (ip.is_loopback or ip.is_unspecified or (ip.version == 6 and ip.is_link_local))


def host_addresses() -> list[IPAddress]:
    """The host's usable addresses (ImportError without python-zeroconf's ifaddr)."""
    import ifaddr  # a dependency of python-zeroconf

    out: list[IPAddress] = []
    for adapter in ifaddr.get_adapters():
        for a in adapter.ips:
            ip = _ip(a.ip if isinstance(a.ip, str) else a.ip[0])
            if _usable(ip) and ip not in out:
                out.append(ip)
    return out


def reachable(bound: list[tuple[str, int]]) -> bool:
    """Does upsd listen beyond loopback (on a wildcard or a non-loopback address)?

    What decides both the advertisement and the generated TLS certificate (docs/tls.md)."""
    return any(not _ip(h).is_loopback for h, _ in bound)


def advertised(bound: list[tuple[str, int]]) -> tuple[int, list[IPAddress], list[str]] | None:
    """(port, addresses, interfaces) to advertise for upsd's bound sockets, or None.

    The first port on a non-loopback address wins. ``0.0.0.0``/``::`` stand for all of
    the host's addresses (and all interfaces: ``interfaces`` is then empty).
    """
    if not reachable(bound):
        return None
    public = [(_ip(h), p) for h, p in bound if not _ip(h).is_loopback]
    port = public[0][1]
    ips = [ip for ip, p in public if p == port]
    specific = [ip for ip in ips if _usable(ip)]
    if wildcard := {ip.version for ip in ips if ip.is_unspecified}:
        host = [ip for ip in host_addresses() if ip.version in wildcard]
        return port, host + [ip for ip in specific if ip not in host], []
    return port, specific, [str(ip) for ip in specific if ip.version == 4]


def host_label(text: str) -> str:
    """A host name fit for ``<name>.local.``."""
    return re.sub(r"[^A-Za-z0-9-]", "-", text.split(".")[0]).strip("-")[:63] or "nut-bridge"


class Advertiser:
    """Registers the service in the background; ``stop()`` sends the goodbyes."""

    def __init__(self, bound: list[tuple[str, int]], server_id: Callable[[], str], push: bool,
                 tls_sha256: str | None = None) -> None:
        self._bound = bound
        self._server_id = server_id
        self._push = push
        self._tls_sha256 = tls_sha256  # None: upsd does not offer STARTTLS
        self._zc: AsyncZeroconf | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        what = advertised(self._bound)
        if what is None:
            log.info("zeroconf: not advertised (upsd listens on loopback only)")
            return
        try:
            from zeroconf import InterfaceChoice
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
        except ImportError:
            log.info("zeroconf: python-zeroconf is not installed, not advertised "
                     "(pip install 'nutbridge-ups[zeroconf]')")
            return
        port, addresses, interfaces = what
        if not addresses:
            log.warning("zeroconf: no usable address to advertise")
            return
        host = host_label(socket.gethostname())
        server_id = self._server_id()
        properties = {
            "txtvers": "1",
            "vendor": "nut-bridge",
            "id": server_id,
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "push": "1" if self._push else "0",
        }
        if self._tls_sha256:
            properties["tls_sha256"] = self._tls_sha256
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"NUT Bridge on {host}"[:63] + "." + SERVICE_TYPE,
            port=port,
            addresses=[ip.packed for ip in addresses],
            server=f"{host}.local.",
            properties=properties,
        )
        try:
            self._zc = AsyncZeroconf(interfaces=interfaces or InterfaceChoice.All)
        except OSError as exc:
            log.warning("zeroconf: cannot open the mDNS sockets, not advertised: %s", exc)
            return
        self._task = asyncio.get_running_loop().create_task(self._register(info, server_id),
                                                            name="zeroconf")

    async def _register(self, info: AsyncServiceInfo, server_id: str) -> None:
        assert self._zc is not None
        try:
            # Probing for a unique name takes about a second; a conflict renames us ("... (2)").
            announcing = await self._zc.async_register_service(info, allow_name_change=True)
            # stop() cancels this task, so no announcement can follow the goodbyes.
            await announcing
        except Exception as exc:
            log.warning("zeroconf: cannot advertise: %s", exc)
            return
        addrs = ", ".join(info.parsed_addresses())
        log.info("zeroconf: advertising %r (%s) on %s port %d, id %s",
                 info.name.removesuffix("." + SERVICE_TYPE), SERVICE_TYPE, addrs, info.port, server_id)

    async def stop(self) -> None:
        """Withdraw the service (goodbye packets) and close the mDNS sockets."""
        task, self._task = self._task, None
        zc, self._zc = self._zc, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if zc is not None:
            try:
                await zc.async_close()  # unregisters every service: sends goodbyes
            except Exception as exc:
                log.debug("zeroconf: close failed: %s", exc)
