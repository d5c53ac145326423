"""upsd.users: who may do what, and (bridge extension) from where."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .parser import Entry, read_entries
from .upsd_conf import Network, addr_in, parse_network

log = logging.getLogger(__name__)


@dataclass
class User:
    name: str
    password: str | None = None
    actions: set[str] = field(default_factory=set)  # lowercase
    instcmds: set[str] = field(default_factory=set)  # lowercase; "all" = every command
    networks: list[Network] = field(default_factory=list)  # empty: from anywhere

    def from_ok(self, addr: str) -> bool:
        return not self.networks or addr_in(addr, self.networks)


@dataclass
class Users:
    users: dict[str, User] = field(default_factory=dict)

    def _auth(self, username: str | None, password: str | None, addr: str) -> User | None:
        if username is None or password is None:
            return None
        user = self.users.get(username)  # case-sensitive, as upstream
        if user is None or user.password is None:
            return None
        if not hmac.compare_digest(user.password.encode(), password.encode()):
            return None
        if not user.from_ok(addr):
            log.warning("User %s refused from %s (not in its 'from' networks)", username, addr)
            return None
        return user

    def check_action(self, username: str | None, password: str | None, addr: str, action: str) -> bool:
        user = self._auth(username, password, addr)
        return user is not None and action.lower() in user.actions

    def check_instcmd(self, username: str | None, password: str | None, addr: str, cmd: str) -> bool:
        user = self._auth(username, password, addr)
        return user is not None and ("all" in user.instcmds or cmd.lower() in user.instcmds)


def parse_users(path: Path, entries: list[Entry] | None = None) -> Users:
    entries = read_entries(path) if entries is None else entries
    users = Users()
    current: User | None = None
    for e in entries:
        first = e.words[0]
        if first.startswith("[") and first.endswith("]") and len(first) > 2:
            name = first[1:-1]
            if name in users.users:
                log.warning("%s:%d: ignoring duplicate user [%s]", path, e.line, name)
                current = User(name)  # collected but never registered
            else:
                current = User(name)
                users.users[name] = current
            continue
        if current is None:
            log.warning("%s:%d: '%s' outside any [user] section ignored", path, e.line, first)
            continue
        key = first.lower()
        args = list(e.words[1:])
        if args and args[0] == "=":
            args = args[1:]
        if key == "password":
            if not args:
                raise e.error(path, "password expects a value")
            if current.password is None:  # first definition wins, as upstream
                current.password = args[0]
        elif key == "actions":
            current.actions.update(a.lower() for a in args)
        elif key == "instcmds":
            current.instcmds.update(a.lower() for a in args)
        elif key == "upsmon":
            if not args:
                raise e.error(path, "upsmon expects primary or secondary")
            role = args[0].lower()
            if role in ("primary", "master"):
                current.actions.update(("login", "master", "fsd"))
            elif role in ("secondary", "slave"):
                current.actions.add("login")
            else:
                raise e.error(path, f"upsmon: unknown role {args[0]!r} (primary or secondary)")
        elif key == "allowfrom":
            log.warning("%s:%d: allowfrom in upsd.users is no longer used (use 'from = NETWORK...' "
                        "for per-user networks)", path, e.line)
        elif key == "from":
            if not args:
                raise e.error(path, "from expects one or more networks")
            for a in args:
                try:
                    current.networks.append(parse_network(a))
                except ValueError:
                    raise e.error(path, f"from: {a!r} is not an IP address or network") from None
        else:
            log.warning("%s:%d: unknown upsd.users setting '%s' ignored", path, e.line, first)
    return users
