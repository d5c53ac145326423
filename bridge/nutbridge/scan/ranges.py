"""Address ranges for network scans, bounded (sans-IO).

nut-scanner takes ``-s START [-e END]`` and ``-m ADDR/PREFIX``, repeatable; so do we. Unlike
nut-scanner, a range larger than :data:`MAX_ADDRESSES` (or than the caller's limit) is refused
rather than scanned: a typo such as ``/8`` must not send sixteen million probes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

MAX_ADDRESSES = 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RangeError(ValueError):
    """A malformed or oversized range (the message says which)."""


@dataclass(frozen=True)
class Range:
    first: Address
    last: Address

    def __len__(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __iter__(self) -> Iterator[Address]:
        cls = type(self.first)
        for n in range(int(self.first), int(self.last) + 1):
            yield cls(n)


def _addr(text: str) -> Address:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        raise RangeError(f"not an IP address: '{text}'") from None


def span(start: str, end: str | None = None, limit: int = MAX_ADDRESSES) -> Range:
    """START..END (END defaults to START), both included, of one family and at most ``limit``."""
    first = _addr(start)
    last = _addr(end) if end else first
    if first.version != last.version:
        raise RangeError(f"{start} and {end} are not of the same IP version")
    if int(last) < int(first):
        first, last = last, first
    r = Range(first, last)
    if len(r) > limit:
        raise RangeError(f"{first}..{last} has {len(r)} addresses, more than the limit of {limit}")
    return r


def cidr(text: str, limit: int = MAX_ADDRESSES) -> Range:
    """ADDR/PREFIX: every address of the network (host bits of ADDR ignored), at most ``limit``."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise RangeError(f"not a network in CIDR notation: '{text}'") from None
    if net.num_addresses > limit:
        raise RangeError(f"{net} has {net.num_addresses} addresses, more than the limit of {limit}")
    return Range(net[0], net[-1])


def addresses(ranges: list[Range], limit: int = MAX_ADDRESSES) -> list[str]:
    """The addresses of ``ranges`` in order, each once; the total is bounded by ``limit``."""
    seen: dict[str, None] = {}
    for r in ranges:
        for a in r:
            seen[str(a)] = None
            if len(seen) > limit:
                raise RangeError(f"the ranges hold more than the limit of {limit} addresses")
    return list(seen)
