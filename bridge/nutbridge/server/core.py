"""upsd's command handling, sans-IO.

:class:`Core` turns one tokenized request line into the exact answer bytes
upstream upsd would send (RFC 9271 / NUT 2.8 behaviour, check order included).
It owns no sockets: the asyncio layer (``upsd.py``) feeds it lines and writes
what it returns, and fuzz tests drive it directly.

Check order matters to clients and is kept exactly (docs/architecture.md):
SET VAR: UNKNOWN-UPS, availability, ACCESS-DENIED, VAR-NOT-SUPPORTED, READONLY,
SET-FAILED/TOO-LONG, INVALID-VALUE; INSTCMD: UNKNOWN-UPS, availability,
CMD-NOT-SUPPORTED, ACCESS-DENIED.

What each answer looks like is protocol/messages.py's business: every line is
written by one of its writers, every error named by :class:`~..protocol.errors.Err`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .. import __version__
from ..compat import nut_compat
from ..config.hostsaccess import HostsAccess
from ..config.upsd_conf import UpsdConf
from ..config.users import Users
from ..history import History, wire_json
from ..protocol import messages as m
from ..protocol.errors import Err
from ..ratelog import RateLimitedLog
from ..state import Device, DriverState
from .descriptions import Descriptions

log = logging.getLogger("nutbridge.upsd")

NUT_COMPAT = nut_compat()  # the upstream release whose replies we reproduce (the profile)
PROTOCOL_VERSION = "1.3"  # what PROTVER/NETVER answer, in clear text and over TLS alike
# upsd's VER / server.info names its release's home page: 2.8.0 the plain http site,
# 2.8.5 the versioned https page. Ours adds who answers, after the version (docs/compatibility.md).
_HOME = {"2.8.0": "http://www.networkupstools.org/"}.get(
    NUT_COMPAT, f"https://www.networkupstools.org/historic/v{NUT_COMPAT}/index.html")
SERVER_INFO = f"Network UPS Tools upsd {NUT_COMPAT} (NUT Bridge {__version__}) - {_HOME}"
# 2.8.0-2.8.2 answer PROTVER but do not list it
HELP = ("Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
        if NUT_COMPAT == "2.8.0" else
        "Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n")

# Answers to repeated GET VAR lines kept (all forgotten when full: an attacker asking
# for endless names only costs itself the cache).
ANSWER_CACHE_MAX = 1024

# LIST EVENT (docs/events.md): records sent when no count is given, and at most
EVENTS_DEFAULT = 100
EVENTS_MAX = 1000

# kind ("SET" | "INSTCMD"), device, name, value/param, tracking id -> queued?
Dispatcher = Callable[[str, Device, str, "str | None", "str | None"], bool]


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
        self.connections_total = 0  # sessions opened since start (network, web, MQTT)
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
        self.connections_total += 1  # /metrics: nutbridge_upsd_connections_total
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
            return m.err(Err.UNKNOWN_COMMAND)
        name = words[0].upper()
        handler = self._commands.get(name)
        if handler is None:
            return m.err(Err.UNKNOWN_COMMAND)
        if name in self._user_cmds:
            if s.username is None:
                return m.err(Err.USERNAME_REQUIRED)
            if s.password is None:
                return m.err(Err.PASSWORD_REQUIRED)
            if self.hosts_access is not None and not self.hosts_access.permits(s.addr):
                self.peer_log.log(logging.WARNING, s.addr, "hosts",
                                  "Access denied to %s by hosts.allow/hosts.deny", s.addr)
                return m.err(Err.ACCESS_DENIED)
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
        return m.err(Err(code)) if code else None

    # ---- simple commands ----------------------------------------------------
    def _ver(self, s: Session, a: tuple[str, ...]) -> str:
        return m.err(Err.INVALID_ARGUMENT) if a else SERVER_INFO + "\n"

    def _netver(self, s: Session, a: tuple[str, ...]) -> str:
        return m.err(Err.INVALID_ARGUMENT) if a else PROTOCOL_VERSION + "\n"

    def _help(self, s: Session, a: tuple[str, ...]) -> str:
        return m.err(Err.INVALID_ARGUMENT) if a else HELP

    def _starttls(self, s: Session, a: tuple[str, ...]) -> str:
        if s.tls:
            return m.err(Err.ALREADY_SSL_MODE)
        if not self.tls_available:
            return m.err(Err.FEATURE_NOT_CONFIGURED)
        s.start_tls = True
        return m.OK_STARTTLS

    def _username(self, s: Session, a: tuple[str, ...]) -> str:
        return self._credential(s, a, "username")

    def _password(self, s: Session, a: tuple[str, ...]) -> str:
        return self._credential(s, a, "password")

    @staticmethod
    def _credential(s: Session, a: tuple[str, ...], field: str) -> str:
        # always OK when first given: credentials are checked per command
        if len(a) != 1:
            return m.err(Err.INVALID_ARGUMENT)
        if getattr(s, field) is not None:
            return m.err(Err.ALREADY_SET_USERNAME if field == "username" else Err.ALREADY_SET_PASSWORD)
        setattr(s, field, a[0])
        return m.OK

    def _logout(self, s: Session, a: tuple[str, ...]) -> str:
        s.close_after = True
        return m.OK_GOODBYE

    def _action(self, s: Session, action: str) -> bool:
        return self.users.check_action(s.username, s.password, s.addr, action)

    def _login(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) != 1:
            return m.err(Err.INVALID_ARGUMENT)
        if s.login is not None:
            return m.err(Err.ALREADY_LOGGED_IN)
        dev = self.find(a[0])
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        if not self._action(s, "login"):
            self.peer_log.log(logging.WARNING, s.addr, "login", "User %s@%s failed to LOGIN to UPS [%s]",
                              s.username, s.addr, dev.name)
            return m.err(Err.ACCESS_DENIED)
        s.login = dev
        dev.numlogins += 1
        log.info("User %s@%s logged into UPS [%s]", s.username, s.addr, dev.name)
        return m.OK

    def _primary(self, s: Session, a: tuple[str, ...], word: str) -> str:
        # a permission probe only: it changes no state
        if len(a) != 1:
            return m.err(Err.INVALID_ARGUMENT)
        dev = self.find(a[0])
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        if not (self._action(s, "primary") or self._action(s, "master")):
            return m.err(Err.ACCESS_DENIED)
        return m.granted(word)

    def _fsd(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) != 1:
            return m.err(Err.INVALID_ARGUMENT)
        dev = self.find(a[0])
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        if not self._action(s, "fsd"):
            self.peer_log.log(logging.WARNING, s.addr, "fsd", "User %s@%s failed to set FSD on UPS [%s]",
                              s.username, s.addr, dev.name)
            return m.err(Err.ACCESS_DENIED)
        log.warning("Client %s@%s set FSD on UPS [%s]", s.username, s.addr, dev.name)
        self._record("fsd", dev, "FSD set", s)
        dev.latch_fsd()
        return m.OK_FSD_SET

    # ---- push extension ------------------------------------------------------
    def _subscribe(self, s: Session, a: tuple[str, ...]) -> str:
        """``SUBSCRIBE <ups>...|*``: bridge extension (docs/push.md).

        Standard clients never send it; other servers answer UNKNOWN-COMMAND,
        which tells our clients to poll. Reading needs no login, so neither
        does subscribing.
        """
        if not self.conf.push:
            return m.err(Err.UNKNOWN_COMMAND)
        if not a:
            return m.err(Err.INVALID_ARGUMENT)
        if a == ("*",):
            devs = list(self.devices)
        else:
            devs = []
            for name in a:
                dev = self.find(name)
                if dev is None:
                    return m.err(Err.UNKNOWN_UPS)
                devs.append(dev)
        new = [d for d in devs if d.name not in s.subscribed]
        s.subscribed.update(d.name for d in new)
        s.subscribe_to = new
        return m.OK_SUBSCRIBED

    def update_batch(self, dev: Device, changed: frozenset[str] | None) -> str:
        """One push batch: changed variables (all when None), deletions, availability."""
        name = dev.name
        out = [m.update_begin(name)]
        names = [v.name for v in dev.variables()] if changed is None else sorted(changed, key=str.lower)
        for n in names:
            var = dev.get(n)
            if var is not None:
                value = dev.served_status() if n.lower() == "ups.status" else var.value
                out.append(m.var(name, var.name, value))
            elif not dev.has_cmd(n) and changed is not None:
                out.append(m.delvar(name, n))
        code = dev.availability(self.conf.maxage)
        state = code or ("WAIT" if dev.driver_state is DriverState.WAIT else "OK")
        out.append(m.update_state(name, state))
        out.append(m.update_end(name))
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
            return m.err(Err.INVALID_ARGUMENT)
        name = a[0]
        if name != "*" and self.find(name) is None:
            return m.err(Err.UNKNOWN_UPS)
        count = EVENTS_DEFAULT
        if len(a) == 2:
            if not (a[1].isascii() and a[1].isdigit()) or int(a[1]) < 1:
                return m.err(Err.INVALID_ARGUMENT)
            count = min(int(a[1]), EVENTS_MAX)
        private = self._may_act(s)
        budget = m.event_room(name)
        records = self.history.records(None if name == "*" else name, count=count)
        return m.list_block(("EVENT", name), (m.event_item(name, wire_json(rec, private, budget))
                                              for rec in records))

    # ---- GET ----------------------------------------------------------------
    def _get(self, s: Session, a: tuple[str, ...]) -> str:
        if not a:
            return m.err(Err.INVALID_ARGUMENT)
        sub = a[0].upper()
        if sub == "TRACKING":
            if len(a) == 1:
                return m.tracking_flag(s.tracking)
            if not s.tracking:
                return m.err(Err.FEATURE_NOT_CONFIGURED)
            self._purge_tracking()
            entry = self.tracking.get(a[1].upper())
            return m.tracking_result(entry[0] if entry else None)
        if len(a) < 2:
            return m.err(Err.INVALID_ARGUMENT)
        upsname = a[1]
        if sub == "NUMLOGINS":
            dev = self.find(upsname)
            if dev is None:
                return m.err(Err.UNKNOWN_UPS)
            return self._avail(dev) or m.numlogins(upsname, dev.numlogins)
        if sub == "UPSDESC":
            dev = self.find(upsname)
            if dev is None:
                return m.err(Err.UNKNOWN_UPS)
            return m.upsdesc(upsname, dev.desc or "Unavailable")
        if len(a) < 3:
            return m.err(Err.INVALID_ARGUMENT)
        varname = a[2]
        if sub == "VAR":
            return self._get_var(upsname, varname)
        if sub in ("TYPE", "DESC", "CMDDESC"):
            dev = self.find(upsname)
            if dev is None:
                return m.err(Err.UNKNOWN_UPS)
            err = self._avail(dev)
            if err:
                return err
            if sub == "TYPE":
                var = dev.get(varname)
                if var is None:
                    return m.err(Err.VAR_NOT_SUPPORTED)
                return m.vartype(upsname, varname, var.type_words())
            if sub == "DESC":
                return m.desc(upsname, varname, self.descriptions.var(varname) or "Description unavailable")
            return m.cmddesc(upsname, varname, self.descriptions.cmd(varname) or "Description unavailable")
        return m.err(Err.INVALID_ARGUMENT)

    def _get_var(self, upsname: str, varname: str) -> str:
        low = varname.lower()
        if low.startswith("server."):
            # upstream answers these in lower case whatever the client sent
            if low == "server.info":
                return m.var(upsname, "server.info", SERVER_INFO)
            if low == "server.version":
                return m.var(upsname, "server.version", NUT_COMPAT)
            return m.err(Err.VAR_NOT_SUPPORTED)
        dev = self._by_name.get(upsname.lower())
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        err = self._avail(dev)
        if err:
            return err
        if low == "ups.status":
            if dev.get("ups.status") is None and dev.driver_state is not DriverState.WAIT and not dev.fsd:
                return m.err(Err.VAR_NOT_SUPPORTED)
            self._may_cache(dev)
            return m.var(upsname, varname, dev.served_status())
        var = dev.get(varname)
        if var is None:
            return m.err(Err.VAR_NOT_SUPPORTED)
        self._may_cache(dev)
        return m.var(upsname, varname, var.value)

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
            return m.err(Err.INVALID_ARGUMENT)
        sub = a[0].upper()
        if sub == "EVENT":
            return self._list_event(s, a[1:])
        if sub == "UPS":
            return m.list_block(("UPS",), (m.ups_item(d.name, d.desc or "Description unavailable")
                                           for d in self.devices))
        if len(a) < 2:
            return m.err(Err.INVALID_ARGUMENT)
        upsname = a[1]
        if sub in ("VAR", "RW", "CMD", "CLIENT"):
            dev = self.find(upsname)
            if dev is None:
                return m.err(Err.UNKNOWN_UPS)
            if sub == "CLIENT":
                clients = [m.client_item(dev.name, x.addr) for x in self.sessions if x.login is dev]
                return m.list_block(("CLIENT", upsname), clients)
            err = self._avail(dev)
            if err:
                return err
            if sub == "VAR":
                return self._list_var(dev, upsname)
            if sub == "RW":
                return m.list_block(("RW", upsname),
                                    (m.rw_item(upsname, v.name, v.value) for v in dev.variables() if v.rw))
            return m.list_block(("CMD", upsname), (m.cmd_item(upsname, c) for c in dev.commands()))
        if len(a) < 3:
            return m.err(Err.INVALID_ARGUMENT)
        varname = a[2]
        if sub in ("ENUM", "RANGE"):
            dev = self.find(upsname)
            if dev is None:
                return m.err(Err.UNKNOWN_UPS)
            err = self._avail(dev)
            if err:
                return err
            var = dev.get(varname)
            if var is None:
                return m.err(Err.VAR_NOT_SUPPORTED)
            if sub == "ENUM":
                items = [m.enum_item(upsname, varname, e) for e in var.enums]
            else:
                items = [m.range_item(upsname, varname, lo, hi) for lo, hi in var.ranges]
            return m.list_block((sub, upsname, varname), items)
        return m.err(Err.INVALID_ARGUMENT)

    def _list_var(self, dev: Device, upsname: str) -> str:
        # Rendered once per (device generation, name as sent, fsd): a poller
        # listing 50 variables every few seconds costs one dict lookup.
        key = (upsname, dev.generation, dev.fsd, dev.driver_state)
        cache = dev.__dict__.setdefault("_list_cache", {})
        hit = cache.get(upsname)
        if hit is not None and hit[0] == key:
            return str(hit[1])
        out = []
        have_status = False
        for v in dev.variables():
            if v.name.lower() == "ups.status":
                have_status = True
                value = dev.served_status()
            else:
                value = v.value
            out.append(m.var(upsname, v.name, value))
        if not have_status and (dev.driver_state is DriverState.WAIT or dev.fsd):
            # WAIT (or a latched FSD) shows even before the driver set a status
            line = m.var(upsname, "ups.status", dev.served_status())
            names = [v.name.lower() for v in dev.variables()]
            pos = sum(1 for n in names if n < "ups.status")
            out.insert(pos, line)
        text = m.list_block(("VAR", upsname), out)
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

    def _set(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) < 2:
            return m.err(Err.INVALID_ARGUMENT)
        sub = a[0].upper()
        if sub == "TRACKING":
            val = a[1].upper()
            if val == "ON":
                s.tracking = True
                self.tracking_global = True
                return m.OK
            if val == "OFF":
                s.tracking = False
                self.tracking_global = any(x.tracking for x in self.sessions)
                return m.OK
            return m.err(Err.INVALID_ARGUMENT)
        if sub != "VAR" or len(a) < 4:
            return m.err(Err.INVALID_ARGUMENT)
        upsname, varname, value = a[1], a[2], a[3]
        dev = self.find(upsname)
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        err = self._avail(dev)
        if err:
            return err
        if not self._action(s, "set"):
            self.peer_log.log(logging.WARNING, s.addr, "set", "User %s@%s failed to SET %s on UPS [%s]",
                              s.username, s.addr, varname, dev.name)
            return m.err(Err.ACCESS_DENIED)
        var = dev.get(varname)
        if var is None:
            return m.err(Err.VAR_NOT_SUPPORTED)
        if not var.rw:
            return m.err(Err.READONLY)
        if var.string:
            if var.aux < 1:
                return m.err(Err.SET_FAILED)
            if len(value) > var.aux:
                return m.err(Err.TOO_LONG)
        if var.enums and value not in var.enums:
            return m.err(Err.INVALID_VALUE)
        if var.ranges:
            n = _atoi(value)
            if not any(lo <= n <= hi for lo, hi in var.ranges):
                return m.err(Err.INVALID_VALUE)
        tid = self._new_tracking(s)
        if self.dispatcher is None or not self.dispatcher("SET", dev, var.name, value, tid):
            self.tracking.pop(tid or "", None)
            return m.err(Err.SET_FAILED)
        log.info("Set variable: %s@%s set %s on %s to %s", s.username, s.addr, var.name, dev.name, value)
        self._record("set", dev, f"{var.name} = {value}", s, var=var.name, value=value)
        return m.ok(tid)

    def _instcmd(self, s: Session, a: tuple[str, ...]) -> str:
        if len(a) < 2:
            return m.err(Err.INVALID_ARGUMENT)
        upsname, cmd = a[0], a[1]
        param = a[2] if len(a) == 3 else None  # upstream drops it with 4+ args
        dev = self.find(upsname)
        if dev is None:
            return m.err(Err.UNKNOWN_UPS)
        err = self._avail(dev)
        if err:
            return err
        if not dev.has_cmd(cmd):
            return m.err(Err.CMD_NOT_SUPPORTED)
        if not self.users.check_instcmd(s.username, s.password, s.addr, cmd):
            self.peer_log.log(logging.WARNING, s.addr, "instcmd", "User %s@%s failed to run %s on UPS [%s]",
                              s.username, s.addr, cmd, dev.name)
            return m.err(Err.ACCESS_DENIED)
        tid = self._new_tracking(s)
        if self.dispatcher is None or not self.dispatcher("INSTCMD", dev, dev.canonical_cmd(cmd), param, tid):
            self.tracking.pop(tid or "", None)
            return m.err(Err.INSTCMD_FAILED)
        log.info("Instant command: %s@%s did %s%s on %s", s.username, s.addr, cmd,
                 f" (param {param})" if param is not None else "", dev.name)
        name = dev.canonical_cmd(cmd)
        self._record("command", dev, name if param is None else f"{name} {param}", s,
                     command=name, param=param)
        return m.ok(tid)
