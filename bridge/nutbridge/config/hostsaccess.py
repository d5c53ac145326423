"""tcp-wrappers compatibility: /etc/hosts.allow and /etc/hosts.deny for ``upsd``.

Debian's upsd is linked with libwrap and asks ``hosts_access()`` before every
command that needs a username and password (SET, INSTCMD, LOGIN, FSD,
PRIMARY); a refusal answers ``ERR ACCESS-DENIED``. Users who restrict upsd
there keep that protection with the bridge. Supported (hosts_access(5)):
daemon lists with ``ALL``/``upsd``/``EXCEPT``; client patterns ``ALL``, exact
IP, ``a.b.c.`` prefixes, ``net/mask``, ``net/len``, ``[v6]/len``, ``EXCEPT``.
Host-name patterns cannot be checked without DNS and never match (logged once).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DAEMON = "upsd"


@dataclass(frozen=True)
class Rule:
    daemons: tuple[str, ...]
    clients: tuple[str, ...]
    line: int


def _split_list(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _parse(path: Path) -> list[Rule]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    rules: list[Rule] = []
    logical = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0] if not logical else raw
        if not logical:
            start = n
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            parts = logical.split(":")
            if len(parts) >= 2:
                rules.append(Rule(tuple(_split_list(parts[0])), tuple(_split_list(parts[1])), start))
            else:
                log.warning("%s:%d: malformed line ignored", path, start)
        logical = ""
    return rules


def _list_match(items: tuple[str, ...], match: object) -> bool:
    # "a b EXCEPT c d": matches if something before EXCEPT matches and nothing after
    if "EXCEPT" in items:
        i = items.index("EXCEPT")
        return _list_match(items[:i], match) and not _list_match(items[i + 1 :], match)
    return any(match(p) for p in items)  # type: ignore[operator]


def _client_match(pattern: str, addr: str) -> bool:
    if pattern == "ALL":
        return True
    if pattern in ("LOCAL", "UNKNOWN", "KNOWN", "PARANOID"):
        return pattern == "KNOWN"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    pat = pattern
    if pat.startswith("["):
        pat = pat.replace("[", "").replace("]", "")
    if "/" in pat:
        net, mask = pat.split("/", 1)
        try:
            if "." in mask:
                network = ipaddress.ip_network(f"{net}/{mask}", strict=False)
            else:
                network = ipaddress.ip_network(f"{net}/{int(mask)}", strict=False)
        except ValueError:
            return False
        return ip.version == network.version and ip in network
    if pat.endswith(".") and pat[0].isdigit():
        return str(ip).startswith(pat)
    try:
        return ip == ipaddress.ip_address(pat)
    except ValueError:
        if not pat.startswith("@"):
            log.debug("hosts_access: host-name pattern %r cannot match without DNS", pat)
        return False


class HostsAccess:
    def __init__(self, allow: Path | None = None, deny: Path | None = None) -> None:
        self.allow_path = allow or Path(os.environ.get("NUTBRIDGE_HOSTS_ALLOW", "/etc/hosts.allow"))
        self.deny_path = deny or Path(os.environ.get("NUTBRIDGE_HOSTS_DENY", "/etc/hosts.deny"))
        self.reload()

    def reload(self) -> None:
        self.allow = [r for r in _parse(self.allow_path) if self._daemon(r)]
        self.deny = [r for r in _parse(self.deny_path) if self._daemon(r)]

    @staticmethod
    def _daemon(rule: Rule) -> bool:
        return _list_match(rule.daemons, lambda d: d in ("ALL", DAEMON))

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, addr: str) -> bool:
        addr = addr.split("%", 1)[0]
        for r in self.allow:
            if _list_match(r.clients, lambda p: _client_match(p, addr)):
                return True
        return all(not _list_match(r.clients, lambda p: _client_match(p, addr)) for r in self.deny)
