"""upsd's command handling, sans-IO.

:class:`Core` turns one tokenized request line into the exact answer bytes
upstream upsd would send (RFC 9271 / NUT 2.8 behaviour, check order included).
It owns no sockets: the asyncio layer (``upsd.py``) feeds it lines and writes
what it returns, and fuzz tests drive it directly.

Check order matters to clients and is kept exactly (docs/architecture.md):
SET VAR: UNKNOWN-UPS, availability, ACCESS-DENIED, VAR-NOT-SUPPORTED, READONLY,
SET-FAILED/TOO-LONG, INVALID-VALUE; INSTCMD: UNKNOWN-UPS, availability,
CMD-NOT-SUPPORTED, ACCESS-DENIED.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .. import __version__
from ..config.hostsaccess import HostsAccess
from ..config.upsd_conf import UpsdConf
from ..config.users import Users
from ..history import History, wire_json
from ..protocol.wire import MAX_ANSWER, clip, encode
from ..ratelog import RateLimitedLog
from ..state import Device, DriverState
from .descriptions import Descriptions

log = logging.getLogger("nutbridge.upsd")

NUT_COMPAT = "2.8.5"  # the upstream release whose replies we reproduce
PROTOCOL_VERSION = "1.3"
SERVER_INFO = f"Network UPS Tools upsd {NUT_COMPAT} (NUT Bridge {__version__}) - https://www.networkupstools.org/"
HELP = "Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"

# Driver result codes -> GET TRACKING answers (upstream tracking_get).
_TRACKING_TEXT = {
    -1: "PENDING\n",
    0: "SUCCESS\n",
    1: "ERR UNKNOWN\n",
    2: "ERR INVALID-ARGUMENT\n",
    3: "ERR FAILED\n",
    4: "ERR INVALID-ARGUMENT\n",
}

# Answers to repeated GET VAR lines kept (all forgotten when full: an attacker asking
# for endless names only costs itself the cache).
ANSWER_CACHE_MAX = 1024

# LIST EVENT (docs/events.md): records sent when no count is given, and at most
EVENTS_DEFAULT = 100
EVENTS_MAX = 1000

# kind ("SET" | "INSTCMD"), device, name, value/param, tracking id -> queued?
Dispatcher = Callable[[str, Device, str, "str | None", "str | None"], bool]


def _err(code: str) -> str:
    return f"ERR {code}\n"


@dataclass(eq=False)
class Session:
    """One client connection's protocol state."""

    addr: str
    username: str | None = None
    password: str | None = None
    login: Device | None = None
    tracking: bool = False
    tls: bool = False
    # Set by handlers; acted upon by the IO layer after writing the answer.
    close_after: bool = False
    start_tls: bool = False
    subscribed: set[str] = field(default_factory=set)  # push extension
    subscribe_to: list[Device] = field(default_factory=list)  # set by SUBSCRIBE for the IO layer


def _atoi(text: str) -> int:
    """C atoi(): optional sign and leading digits, 0 when none."""
    t = text.lstrip(" \t\n\r\v\f")
    i = 0
    if i < len(t) and t[i] in "+-":
        i += 1
    j = i
    while j < len(t) and t[j].isdigit():
        j += 1
    return int(t[:j]) if j > i else 0


class Core:
    def __init__(
        self,
        devices: Iterable[Device],
        users: Users,
        conf: UpsdConf,
        descriptions: Descriptions | None = None,
        hosts_access: HostsAccess | None = None,
        dispatcher: Dispatcher | None = None,
        tls_available: bool = False,
    ) -> None:
        self.devices: list[Device] = list(devices)
        self._by_name = {d.name.lower(): d for d in self.devices}
        self.users = users
        self.conf = conf
        self.descriptions = descriptions or Descriptions()
        self.hosts_access = hosts_access
        self.dispatcher = dispatcher
        self.tls_available = tls_available
        # in connection order, for LIST CLIENT; a dict so that a disconnect is O(1) with
        # thousands of clients
        self.sessions: dict[Session, None] = {}
        # refusals a client can repeat on every line are logged once per peer per minute
        self.peer_log = RateLimitedLog(log)
        # GET VAR answers by exact request line: (answer, device, its generation, stale
        # deadline). Pollers repeat the same lines; the device's generation bumps on any
        # change, so a hit is the answer handle() would give now (docs/architecture.md).
        self.answers: dict[bytes, tuple[bytes, Device, int, float]] = {}
        self.cacheable: tuple[Device, float] | None = None  # set by the last handle()
        self.tracking: dict[str, tuple[int, float]] = {}
        self.tracking_global = False
        self.history: History | None = None  # set by the bridge: records actions, serves LIST EVENT
        self._commands: dict[str, Callable[[Session, tuple[str, ...]], str]] = {
            "VER": self._ver,
            "NETVER": self._netver,
            "PROTVER": self._netver,
            "HELP": self._help,
            "STARTTLS": self._starttls,
            "GET": self._get,
            "LIST": self._list,
            "USERNAME": self._username,
            "PASSWORD": self._password,
            "LOGIN": self._login,
            "LOGOUT": self._logout,
            "PRIMARY": lambda s, a: self._primary(s, a, "PRIMARY"),
            "MASTER": lambda s, a: self._primary(s, a, "MASTER"),
            "FSD": self._fsd,
            "SET": self._set,
            "INSTCMD": self._instcmd,
            "SUBSCRIBE": self._subscribe,
        }
        self._user_cmds = frozenset({"LOGIN", "PRIMARY", "MASTER", "FSD", "SET", "INSTCMD"})

    # ---- sessions -----------------------------------------------------------
    def connect(self, addr: str) -> Session:
        s = Session(addr)
        self.sessions[s] = None
        return s

    def disconnect(self, s: Session) -> None:
        """Socket closed for any reason: drop its LOGIN (upsmon relies on this)."""
        if s.login is not None:
            s.login.numlogins = max(0, s.login.numlogins - 1)
            s.login = None
        self.sessions.pop(s, None)
        if s.tracking:
            s.tracking = False
            self.tracking_global = any(x.tracking for x in self.sessions)

    # ---- dispatch -----------------------------------------------------------
    def remember(self, line: bytes, answer: bytes, dev: Device, until: float) -> None:
        """Keep ``answer`` for ``line``: valid while ``dev`` keeps its generation, until
        ``until`` (what ``cacheable`` said when the answer was made)."""
        if len(self.answers) >= ANSWER_CACHE_MAX:
            self.answers.clear()
        self.answers[line] = (answer, dev, dev.generation, until)

    def handle(self, s: Session, words: tuple[str, ...]) -> str:
        self.cacheable = None
        if not words:
            return _err("UNKNOWN-COMMAND")
        name = words[0].upper()
        handler = self._commands.get(name)
        if handler is None:
            return _err("UNKNOWN-COMMAND")
        if name in self._user_cmds:
            if s.username is None:
                return _err("USERNAME-REQUIRED")
            if s.password is None:
                return _err("PASSWORD-REQUIRED")
            if self.hosts_access is not None and not self.hosts_access.permits(s.addr):
                self.peer_log.log(logging.WARNING, s.addr, "hosts",
                                  "Access denied to %s by hosts.allow/hosts.deny", s.addr)
                return _err("ACCESS-DENIED")
        return handler(s, words[1:])

    def find(self, name: str) -> Device | None:
        return self._by_name.get(name.lower())

    def add_device(self, dev: Device) -> None:
        """A UPS added by a reload of ups.conf (served from now on, in LIST UPS order)."""
        self.answers.clear()
        self.devices.append(dev)
        self._by_name[dev.name.lower()] = dev

    def remove_device(self, dev: Device) -> None:
        """A UPS dropped by a reload of ups.conf: UNKNOWN-UPS from now on."""
        self.answers.clear()
        self.devices = [d for d in self.devices if d is not dev]
        if self._by_name.get(dev.name.lower()) is dev:
            del self._by_name[dev.name.lower()]

    def _avail(self, dev: Device) -> str | None:
        code = dev.availability(self.conf.maxage)
        return _err(code) if code else None

    # ---- simple commands ----------------------------------------------------
    def _ver(self, s: Session, a: tuple[str, ...]) -> str:
        return _err("INVALID-ARGUMENT") if a else SERVER_INFO + "\n"

    def _netver(self, s: Session, a: tuple[str, ...]) -> str:
        return _err("INVALID-ARGUMENT") if a else PROTOCOL_VERSION + "\n"

    def _help(self, s: Session, a: tuple[str, ...]) -> str:
        return _err("INVALID-ARGUMENT") if a else HELP

    def _starttls(self, s: Session, a: tuple[str, ...]) -> str:
        if s.tls:
            return _err("ALREADY-SSL-MODE")
        if not self.tls_available:
            return _err("FEATURE-NOT-CONFIGURED")
        s.start_tls = True
        return "OK STARTTLS\n"

    def _username(self, s: Session, a: tuple[str, ...]) -> str:
        return self._credential(s, a, "username")

    def _password(self, s: Session, a: tuple[str, ...]) -> str:
        return self._credential(s, a, "password")

    @staticmethod
    def _credential(s: Session, a: tuple[str, ...], field: str) -> str:
        # always OK when first given: credentials are checked per command
        if len(a) != 1:
            return _err("INVALID-ARGUMENT")
        if getattr(s, field) is not None:
            return _err(f"ALREADY-SET-{field.upper()}")
        setattr(s, field, a[0])
        return "OK\n"

    def _logout(self, s: Session, a: tuple[str, ...]) -> str:
        s.close_after = True
        return "OK Goodbye\n"

    def _action(self, s: Session, action: str) -> bool:
        return self.users.check_action(s.username, s.password, s.addr, action)

    def _login(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) != 1:
            return _err("INVALID-ARGUMENT")
        if s.login is not None:
            return _err("ALREADY-LOGGED-IN")
        dev = self.find(a[0])
        if dev is None:
            return _err("UNKNOWN-UPS")
        if not self._action(s, "login"):
            self.peer_log.log(logging.WARNING, s.addr, "login", "User %s@%s failed to LOGIN to UPS [%s]",
                              s.username, s.addr, dev.name)
            return _err("ACCESS-DENIED")
        s.login = dev
        dev.numlogins += 1
        log.info("User %s@%s logged into UPS [%s]", s.username, s.addr, dev.name)
        return "OK\n"

    def _primary(self, s: Session, a: tuple[str, ...], word: str) -> str:
        # a permission probe only: it changes no state
        if len(a) != 1:
            return _err("INVALID-ARGUMENT")
        dev = self.find(a[0])
        if dev is None:
            return _err("UNKNOWN-UPS")
        if not (self._action(s, "primary") or self._action(s, "master")):
            return _err("ACCESS-DENIED")
        return f"OK {word}-GRANTED\n"

    def _fsd(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) != 1:
            return _err("INVALID-ARGUMENT")
        dev = self.find(a[0])
        if dev is None:
            return _err("UNKNOWN-UPS")
        if not self._action(s, "fsd"):
            self.peer_log.log(logging.WARNING, s.addr, "fsd", "User %s@%s failed to set FSD on UPS [%s]",
                              s.username, s.addr, dev.name)
            return _err("ACCESS-DENIED")
        log.warning("Client %s@%s set FSD on UPS [%s]", s.username, s.addr, dev.name)
        self._record("fsd", dev, "FSD set", s)
        dev.latch_fsd()
        return "OK FSD-SET\n"

    # ---- push extension ------------------------------------------------------
    def _subscribe(self, s: Session, a: tuple[str, ...]) -> str:
        """``SUBSCRIBE <ups>...|*``: bridge extension (docs/push.md).

        Standard clients never send it; other servers answer UNKNOWN-COMMAND,
        which tells our clients to poll. Reading needs no login, so neither
        does subscribing.
        """
        if not self.conf.push:
            return _err("UNKNOWN-COMMAND")
        if not a:
            return _err("INVALID-ARGUMENT")
        if a == ("*",):
            devs = list(self.devices)
        else:
            devs = []
            for name in a:
                dev = self.find(name)
                if dev is None:
                    return _err("UNKNOWN-UPS")
                devs.append(dev)
        new = [d for d in devs if d.name not in s.subscribed]
        s.subscribed.update(d.name for d in new)
        s.subscribe_to = new
        return "OK SUBSCRIBED\n"

    def update_batch(self, dev: Device, changed: frozenset[str] | None) -> str:
        """One push batch: changed variables (all when None), deletions, availability."""
        name = dev.name
        out = [f"BEGIN UPDATE {name}\n"]
        names = [v.name for v in dev.variables()] if changed is None else sorted(changed, key=str.lower)
        for n in names:
            var = dev.get(n)
            if var is not None:
                value = dev.served_status() if n.lower() == "ups.status" else var.value
                out.append(clip(f'VAR {name} {var.name} "{encode(value)}"\n'))
            elif not dev.has_cmd(n) and changed is not None:
                out.append(clip(f"DELVAR {name} {n}\n"))
        code = dev.availability(self.conf.maxage)
        state = code or ("WAIT" if dev.driver_state is DriverState.WAIT else "OK")
        out.append(f"STATE {name} {state}\n")
        out.append(f"END UPDATE {name}\n")
        return "".join(out)

    # ---- event history extension ---------------------------------------------
    def _record(self, kind: str, dev: Device, detail: str, s: Session, **fields: str | None) -> None:
        if self.history is not None:
            self.history.record(kind, dev.name, detail, user=s.username, addr=s.addr, **fields)

    def _may_act(self, s: Session) -> bool:
        """Valid credentials of a user with an action or instant command (sees who did what)."""
        user = self.users.users.get(s.username or "")
        if user is None or s.password is None:
            return False
        if self.hosts_access is not None and not self.hosts_access.permits(s.addr):
            return False
        # one check is enough: the password and networks are the same for every right
        acts = sorted(user.actions - {"login"})
        if acts:
            return self._action(s, acts[0])
        cmds = sorted(user.instcmds)
        return bool(cmds) and self.users.check_instcmd(s.username, s.password, s.addr, cmds[0])

    def _list_event(self, s: Session, a: tuple[str, ...]) -> str:
        """``LIST EVENT <ups>|* [<count>]``: bridge extension (docs/events.md).

        Off (no history, or ``PUSH false``) it answers as upsd answers any LIST
        type it does not know. Reading needs no login, like LIST VAR; ``user`` and
        ``addr`` are only shown to a user who may act.
        """
        if self.history is None or not self.conf.push or not 1 <= len(a) <= 2:
            return _err("INVALID-ARGUMENT")
        name = a[0]
        if name != "*" and self.find(name) is None:
            return _err("UNKNOWN-UPS")
        count = EVENTS_DEFAULT
        if len(a) == 2:
            if not (a[1].isascii() and a[1].isdigit()) or int(a[1]) < 1:
                return _err("INVALID-ARGUMENT")
            count = min(int(a[1]), EVENTS_MAX)
        private = self._may_act(s)
        head = f"EVENT {name}"
        budget = MAX_ANSWER - len(head) - 4  # space, two quotes, newline
        out = [f"BEGIN LIST {head}\n"]
        for rec in self.history.records(None if name == "*" else name, count=count):
            out.append(f'{head} "{encode(wire_json(rec, private, budget))}"\n')
        out.append(f"END LIST {head}\n")
        return "".join(out)

    # ---- GET ----------------------------------------------------------------
    def _get(self, s: Session, a: tuple[str, ...]) -> str:
        if not a:
            return _err("INVALID-ARGUMENT")
        sub = a[0].upper()
        if sub == "TRACKING":
            if len(a) == 1:
                return "ON\n" if s.tracking else "OFF\n"
            if not s.tracking:
                return _err("FEATURE-NOT-CONFIGURED")
            self._purge_tracking()
            entry = self.tracking.get(a[1].upper())
            return _TRACKING_TEXT.get(entry[0], "ERR UNKNOWN\n") if entry else "ERR UNKNOWN\n"
        if len(a) < 2:
            return _err("INVALID-ARGUMENT")
        upsname = a[1]
        if sub == "NUMLOGINS":
            dev = self.find(upsname)
            if dev is None:
                return _err("UNKNOWN-UPS")
            return self._avail(dev) or f"NUMLOGINS {upsname} {dev.numlogins}\n"
        if sub == "UPSDESC":
            dev = self.find(upsname)
            if dev is None:
                return _err("UNKNOWN-UPS")
            return clip(f'UPSDESC {upsname} "{encode(dev.desc or "Unavailable")}"\n')
        if len(a) < 3:
            return _err("INVALID-ARGUMENT")
        varname = a[2]
        if sub == "VAR":
            return self._get_var(upsname, varname)
        if sub in ("TYPE", "DESC", "CMDDESC"):
            dev = self.find(upsname)
            if dev is None:
                return _err("UNKNOWN-UPS")
            err = self._avail(dev)
            if err:
                return err
            if sub == "TYPE":
                var = dev.get(varname)
                if var is None:
                    return _err("VAR-NOT-SUPPORTED")
                return clip(f"TYPE {upsname} {varname} {' '.join(var.type_words())}\n")
            text = self.descriptions.var(varname) if sub == "DESC" else self.descriptions.cmd(varname)
            return clip(f'{sub} {upsname} {varname} "{text or "Description unavailable"}"\n')
        return _err("INVALID-ARGUMENT")

    def _get_var(self, upsname: str, varname: str) -> str:
        low = varname.lower()
        if low.startswith("server."):
            # upstream answers these in lower case whatever the client sent
            if low == "server.info":
                return clip(f'VAR {upsname} server.info "{SERVER_INFO}"\n')
            if low == "server.version":
                return clip(f'VAR {upsname} server.version "{NUT_COMPAT}"\n')
            return _err("VAR-NOT-SUPPORTED")
        dev = self._by_name.get(upsname.lower())
        if dev is None:
            return _err("UNKNOWN-UPS")
        err = self._avail(dev)
        if err:
            return err
        if low == "ups.status":
            if dev.get("ups.status") is None and dev.driver_state is not DriverState.WAIT and not dev.fsd:
                return _err("VAR-NOT-SUPPORTED")
            self._may_cache(dev)
            return clip(f'VAR {upsname} {varname} "{encode(dev.served_status())}"\n')
        var = dev.get(varname)
        if var is None:
            return _err("VAR-NOT-SUPPORTED")
        self._may_cache(dev)
        return clip(f'VAR {upsname} {varname} "{encode(var.value)}"\n')

    def _may_cache(self, dev: Device) -> None:
        # Valid until the device changes (generation) or, with fresh data, until it
        # would turn stale by age (availability()'s rule); WAIT has no deadline.
        st = dev.driver_state
        if st is DriverState.OK:
            self.cacheable = (dev, dev.last_heard + self.conf.maxage + 1)
        elif st is DriverState.WAIT:
            self.cacheable = (dev, float("inf"))

    # ---- LIST ---------------------------------------------------------------
    def _list(self, s: Session, a: tuple[str, ...]) -> str:
        if not a:
            return _err("INVALID-ARGUMENT")
        sub = a[0].upper()
        if sub == "EVENT":
            return self._list_event(s, a[1:])
        if sub == "UPS":
            out = ["BEGIN LIST UPS\n"]
            for d in self.devices:
                out.append(clip(f'UPS {d.name} "{encode(d.desc or "Description unavailable")}"\n'))
            out.append("END LIST UPS\n")
            return "".join(out)
        if len(a) < 2:
            return _err("INVALID-ARGUMENT")
        upsname = a[1]
        if sub in ("VAR", "RW", "CMD", "CLIENT"):
            dev = self.find(upsname)
            if dev is None:
                return _err("UNKNOWN-UPS")
            if sub == "CLIENT":
                out = [f"BEGIN LIST CLIENT {upsname}\n"]
                out += [f"CLIENT {dev.name} {x.addr}\n" for x in self.sessions if x.login is dev]
                out.append(f"END LIST CLIENT {upsname}\n")
                return "".join(out)
            err = self._avail(dev)
            if err:
                return err
            if sub == "VAR":
                return self._list_var(dev, upsname)
            if sub == "RW":
                out = [f"BEGIN LIST RW {upsname}\n"]
                out += [clip(f'RW {upsname} {v.name} "{encode(v.value)}"\n') for v in dev.variables() if v.rw]
                out.append(f"END LIST RW {upsname}\n")
                return "".join(out)
            out = [f"BEGIN LIST CMD {upsname}\n"]
            out += [clip(f"CMD {upsname} {c}\n") for c in dev.commands()]
            out.append(f"END LIST CMD {upsname}\n")
            return "".join(out)
        if len(a) < 3:
            return _err("INVALID-ARGUMENT")
        varname = a[2]
        if sub in ("ENUM", "RANGE"):
            dev = self.find(upsname)
            if dev is None:
                return _err("UNKNOWN-UPS")
            err = self._avail(dev)
            if err:
                return err
            var = dev.get(varname)
            if var is None:
                return _err("VAR-NOT-SUPPORTED")
            head = f"{sub} {upsname} {varname}"
            out = [clip(f"BEGIN LIST {head}\n")]
            if sub == "ENUM":
                out += [clip(f'{head} "{encode(e)}"\n') for e in var.enums]
            else:
                out += [clip(f'{head} "{lo}" "{hi}"\n') for lo, hi in var.ranges]
            out.append(clip(f"END LIST {head}\n"))
            return "".join(out)
        return _err("INVALID-ARGUMENT")

    def _list_var(self, dev: Device, upsname: str) -> str:
        # Rendered once per (device generation, name as sent, fsd): a poller
        # listing 50 variables every few seconds costs one dict lookup.
        key = (upsname, dev.generation, dev.fsd, dev.driver_state)
        cache = dev.__dict__.setdefault("_list_cache", {})
        hit = cache.get(upsname)
        if hit is not None and hit[0] == key:
            return str(hit[1])
        out = [f"BEGIN LIST VAR {upsname}\n"]
        have_status = False
        for v in dev.variables():
            if v.name.lower() == "ups.status":
                have_status = True
                value = dev.served_status()
            else:
                value = v.value
            out.append(clip(f'VAR {upsname} {v.name} "{encode(value)}"\n'))
        if not have_status and (dev.driver_state is DriverState.WAIT or dev.fsd):
            # WAIT (or a latched FSD) shows even before the driver set a status
            line = clip(f'VAR {upsname} ups.status "{encode(dev.served_status())}"\n')
            names = [v.name.lower() for v in dev.variables()]
            pos = sum(1 for n in names if n < "ups.status")
            out.insert(1 + pos, line)
        out.append(f"END LIST VAR {upsname}\n")
        text = "".join(out)
        if len(cache) > 8:
            cache.clear()
        cache[upsname] = (key, text)
        return text

    # ---- SET / INSTCMD ------------------------------------------------------
    def _new_tracking(self, s: Session) -> str | None:
        if not s.tracking:
            return None
        tid = str(uuid.uuid4()).upper()
        self.tracking[tid] = (-1, time.monotonic() + self.conf.trackingdelay)
        return tid

    def tracking_result(self, tid: str | None, status: int) -> None:
        if tid is not None and tid in self.tracking:
            self.tracking[tid] = (status, self.tracking[tid][1])

    def _purge_tracking(self) -> None:
        now = time.monotonic()
        for tid in [t for t, (_, exp) in self.tracking.items() if exp < now]:
            del self.tracking[tid]

    def _ok(self, tid: str | None) -> str:
        return f"OK TRACKING {tid}\n" if tid else "OK\n"

    def _set(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) < 2:
            return _err("INVALID-ARGUMENT")
        sub = a[0].upper()
        if sub == "TRACKING":
            val = a[1].upper()
            if val == "ON":
                s.tracking = True
                self.tracking_global = True
                return "OK\n"
            if val == "OFF":
                s.tracking = False
                self.tracking_global = any(x.tracking for x in self.sessions)
                return "OK\n"
            return _err("INVALID-ARGUMENT")
        if sub != "VAR" or len(a) < 4:
            return _err("INVALID-ARGUMENT")
        upsname, varname, value = a[1], a[2], a[3]
        dev = self.find(upsname)
        if dev is None:
            return _err("UNKNOWN-UPS")
        err = self._avail(dev)
        if err:
            return err
        if not self._action(s, "set"):
            self.peer_log.log(logging.WARNING, s.addr, "set", "User %s@%s failed to SET %s on UPS [%s]",
                              s.username, s.addr, varname, dev.name)
            return _err("ACCESS-DENIED")
        var = dev.get(varname)
        if var is None:
            return _err("VAR-NOT-SUPPORTED")
        if not var.rw:
            return _err("READONLY")
        if var.string:
            if var.aux < 1:
                return _err("SET-FAILED")
            if len(value) > var.aux:
                return _err("TOO-LONG")
        if var.enums and value not in var.enums:
            return _err("INVALID-VALUE")
        if var.ranges:
            n = _atoi(value)
            if not any(lo <= n <= hi for lo, hi in var.ranges):
                return _err("INVALID-VALUE")
        tid = self._new_tracking(s)
        if self.dispatcher is None or not self.dispatcher("SET", dev, var.name, value, tid):
            self.tracking.pop(tid or "", None)
            return _err("SET-FAILED")
        log.info("Set variable: %s@%s set %s on %s to %s", s.username, s.addr, var.name, dev.name, value)
        self._record("set", dev, f"{var.name} = {value}", s, var=var.name, value=value)
        return self._ok(tid)

    def _instcmd(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) < 2:
            return _err("INVALID-ARGUMENT")
        upsname, cmd = a[0], a[1]
        param = a[2] if len(a) == 3 else None  # upstream drops it with 4+ args
        dev = self.find(upsname)
        if dev is None:
            return _err("UNKNOWN-UPS")
        err = self._avail(dev)
        if err:
            return err
        if not dev.has_cmd(cmd):
            return _err("CMD-NOT-SUPPORTED")
        if not self.users.check_instcmd(s.username, s.password, s.addr, cmd):
            self.peer_log.log(logging.WARNING, s.addr, "instcmd", "User %s@%s failed to run %s on UPS [%s]",
                              s.username, s.addr, cmd, dev.name)
            return _err("ACCESS-DENIED")
        tid = self._new_tracking(s)
        if self.dispatcher is None or not self.dispatcher("INSTCMD", dev, dev.canonical_cmd(cmd), param, tid):
            self.tracking.pop(tid or "", None)
            return _err("INSTCMD-FAILED")
        log.info("Instant command: %s@%s did %s%s on %s", s.username, s.addr, cmd,
                 f" (param {param})" if param is not None else "", dev.name)
        name = dev.canonical_cmd(cmd)
        self._record("command", dev, name if param is None else f"{name} {param}", s,
                     command=name, param=param)
        return self._ok(tid)
