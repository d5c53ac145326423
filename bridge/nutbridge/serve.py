"""The composition root of ``nutbridge serve``: configuration -> devices + drivers + upsd + monitor.

The one module that knows every part of the bridge process and wires them together; none of the
parts imports it (docs/architecture.md, tests/test_architecture.py):

* the drivers of ups.conf, through the driver API (:func:`nutbridge.drivers.create_driver`),
  each writing its :class:`~nutbridge.state.Device`;
* upsd (:mod:`nutbridge.server`): :class:`~nutbridge.server.core.Core` over those devices, with
  SET VAR / INSTCMD routed back to the drivers (:meth:`Bridge.dispatch`), and its listeners;
* the event history, the state directory, TLS (CERTFILE, else the bridge's own certificate when
  it listens beyond loopback: server/selfsigned.py, docs/tls.md) and the zeroconf advertisement;
* what ``serve`` adds for safe shutdowns (:class:`nutbridge.monitor.serve.ServeHooks`: pid
  files, the monitor of upsmon.conf, killpower).

Two command lines run it: ``nutbridge.server.main`` (``nutbridge serve``: the bridge runs its
drivers) and ``nutbridge.upsd_main`` (``nutbridge upsd``: NUT's upsd in an existing install). The
latter sets :attr:`BridgeConfig.attach`: every ups.conf section is then served by attaching to
the socket of the driver that upsdrvctl or systemd started (the external family's ``attach``
mode), as the C upsd does, and the hooks of ``serve`` are off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .config.hostsaccess import HostsAccess
from .config.parser import ConfigError
from .config.ups_conf import UpsConf, UpsSection, parse_ups_conf, validate_drivers
from .config.upsd_conf import Listen, UpsdConf, parse_upsd_conf
from .config.users import User, Users, parse_users
from .drivers import Driver, create_driver
from .drivers.base import ConfigError as DriverConfigError
from .drivers.base import Status
from .history import History
from .monitor.serve import ServeHooks
from .server import selfsigned
from .server.core import Core
from .server.descriptions import Descriptions
from .server.frontend import Frontend, FrontendService
from .server.upsd import Upsd, make_ssl_context
from .server.zeroconf import Advertiser, reachable
from .state import Device
from .statedir import StateDir

log = logging.getLogger("nutbridge")

DEFAULT_UPS = "sim"


@dataclass(frozen=True)
class AttachSettings:
    """``nutbridge upsd``: where the drivers' sockets are and when their data is stale.

    ``statepath``: upsd.conf's STATEPATH, else ``$NUT_STATEPATH``, else the default (the
    driver of section ``x`` listens on ``<statepath>/<driver>-x``); ``maxage``: MAXAGE."""

    statepath: str
    maxage: int


@dataclass
class BridgeConfig:
    ups: UpsConf
    upsd: UpsdConf
    users: Users
    confdir: Path | None
    embedded: bool = False
    generated_password: str | None = None
    sections: list[UpsSection] = field(default_factory=list)
    state_dir: Path | None = None  # --state-dir; None: follows the configuration (statedir.py)
    zeroconf: bool = True  # advertise _nut._tcp when listening on a non-loopback address
    monitor: bool = True  # run upsmon.conf's monitor when the config dir has one (--no-monitor)
    # None: the bridge runs the drivers (serve); else every section attaches to a running driver
    attach: AttachSettings | None = None
    hooks: bool = True  # serve's pid files and power-down killpower (off for `nutbridge upsd`)

    def driver_config(self, ups: UpsConf, section: UpsSection) -> dict[str, str]:
        """The options the driver of ``section`` gets: ups.conf's, plus the attach mode's keys."""
        if self.attach is None:
            return ups.driver_config(section)
        conf = ups.driver_config(section, mode="attach")
        conf.update(_statepath=self.attach.statepath, _maxage=str(self.attach.maxage))
        return conf


def _env_bool(name: str) -> bool | None:
    v = os.environ.get(name)
    if v is None:
        return None
    return v.strip().lower() in ("1", "true", "yes", "on")


def load_config(confdir: Path | None) -> BridgeConfig:
    """Read NUT's files from ``confdir``, or build the embedded default."""
    if confdir is None:
        return embedded_config()
    if not confdir.is_dir():
        raise ConfigError("configuration directory not found", confdir)
    ups = parse_ups_conf(confdir / "ups.conf")
    upsd = parse_upsd_conf(confdir / "upsd.conf")
    env_allow = _env_bool("ALLOW_NO_DEVICE")
    if env_allow is not None:
        upsd.allow_no_device = env_allow
    users_path = confdir / "upsd.users"
    if users_path.is_file():
        users = parse_users(users_path)
    else:
        log.warning("%s not found: nobody can run commands or log in", users_path)
        users = Users()
    if not ups.sections and not upsd.allow_no_device:
        raise ConfigError("at least one UPS must be defined in ups.conf "
                          "(or set ALLOW_NO_DEVICE true in upsd.conf)", confdir / "ups.conf")
    validate_drivers(ups)
    return BridgeConfig(ups, upsd, users, confdir, sections=list(ups.sections))


def embedded_config() -> BridgeConfig:
    """One simulated UPS on 127.0.0.1:3493, an admin with a one-off password."""
    ups = UpsConf(Path("<embedded>/ups.conf"))
    section = UpsSection(DEFAULT_UPS, 0, {"driver": "nutbridge-sim", "port": "simulated",
                                         "desc": "NUT Bridge simulated UPS"})
    ups.sections.append(section)
    upsd = UpsdConf(listen=[Listen("127.0.0.1", 3493)])
    password = secrets.token_urlsafe(9)
    users = Users({"admin": User("admin", password, {"set", "fsd"}, {"all"})})
    return BridgeConfig(ups, upsd, users, None, embedded=True, generated_password=password,
                        sections=[section])


class Bridge:
    def __init__(self, cfg: BridgeConfig, family: int = 0) -> None:
        self.cfg = cfg
        self.devices: list[Device] = []
        self.drivers: dict[str, Driver] = {}
        self.configs: dict[str, dict[str, str]] = {}  # section -> the config its driver was made with
        self.tasks: list[asyncio.Task[None]] = []
        for s in cfg.sections:
            conf = cfg.driver_config(cfg.ups, s)
            dev, drv = _make_driver(cfg.ups, s, conf)
            self.devices.append(dev)
            self.drivers[s.name.lower()] = drv
            self.configs[s.name.lower()] = conf
        self.descriptions = Descriptions.load(cfg.upsd.datapath)
        statepath = cfg.upsd.statepath
        if statepath and cfg.attach is not None:
            statepath = cfg.attach.statepath  # absolute: `nutbridge upsd` changes into it
        self.state = StateDir(cfg.state_dir, cfg.confdir, statepath)
        self.ssl_context = make_ssl_context(cfg.upsd)  # CERTFILE; raises when it cannot be loaded
        # what STARTTLS presents (zeroconf TXT tls_sha256, the app's Supervisor discovery)
        self.tls_sha256: str | None = None
        if cfg.upsd.certfile:
            self.tls_sha256 = selfsigned.file_fingerprint(cfg.upsd.certfile)
        hosts = HostsAccess()
        self.core = Core(self.devices, cfg.users, cfg.upsd, self.descriptions,
                         hosts if hosts.active else None, self.dispatch, self.ssl_context is not None)
        self.upsd = Upsd(self.core, cfg.upsd, self.ssl_context, family)
        self.history = History(self.state)  # event history (docs/events.md); files opened at start
        self.history.watch(self.devices)
        self.core.history = self.history
        self.record_event = self.history.monitor_recorder()
        self.advertiser: Advertiser | None = None
        # the other front ends on the same device state (docs/http.md, docs/mqtt.md): started
        # when upsd.conf (or --http/--mqtt) asks for them; imported only then
        self.frontend: Frontend | None = None
        self.web: FrontendService | None = None
        self.mqtt: FrontendService | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # pid files, the monitor, killpower (docs/shutdown.md)
        # (without hooks: no pid file, no monitor, no upsmon.conf and so no power-down killpower)
        self.hooks = ServeHooks(lambda: self.drivers.values(), confdir=cfg.confdir if cfg.hooks else None,
                                state_dir=cfg.state_dir, embedded=cfg.embedded or not cfg.hooks,
                                monitor=cfg.monitor and cfg.hooks, record=self.record_event)

    def dispatch(self, kind: str, dev: Device, name: str, value: str | None, tid: str | None) -> bool:
        """upsd -> driver: queue a SET or INSTCMD; the answer comes via TRACKING."""
        drv = self.drivers.get(dev.name.lower())
        if drv is None:
            return False
        task = asyncio.get_running_loop().create_task(self._run(drv, kind, name, value, tid))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _run(self, drv: Driver, kind: str, name: str, value: str | None, tid: str | None) -> None:
        try:
            if kind == "SET":
                status = await drv.setvar(name, value or "")
            else:
                status = await drv.instcmd(name, value)
        except Exception:
            log.exception("UPS [%s]: %s %s failed", drv.device.name, kind, name)
            status = Status.FAILED
        self.core.tracking_result(tid, int(status))
        if status != Status.HANDLED:
            log.info("UPS [%s]: %s %s -> %s", drv.device.name, kind, name, Status(status).name)
        drv.poke()

    def _start_driver(self, name: str, drv: Driver) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(drv.run(), name=f"driver-{name}"))

    async def _stop_driver(self, drv: Driver) -> None:
        drv.stop()
        for t in [t for t in self.tasks if t.get_name() == f"driver-{drv.device.name.lower()}"]:
            self.tasks.remove(t)
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await drv.close()
        except Exception:
            log.exception("UPS [%s]: closing the driver failed", drv.device.name)

    async def reload_ups(self, ups: UpsConf) -> None:
        """Apply a re-read ups.conf: new sections start, removed ones stop, changed ones restart.

        As upsd's reload (which re-reads ups.conf to learn which UPS to serve), plus
        what upsdrvctl does for NUT: the drivers live in this process. In the attach mode
        (``nutbridge upsd``) a section is its socket: a changed ``driver``, STATEPATH or
        MAXAGE re-attaches, and any driver name is fine (the driver runs elsewhere).
        """
        if self.cfg.attach is None:
            validate_drivers(ups)
        listed = [d.name.lower() for d in self.core.devices]  # LIST UPS order before the reload
        old = self.configs
        new = {s.name.lower(): (s, self.cfg.driver_config(ups, s)) for s in ups.sections}
        start = [(s, conf) for key, (s, conf) in new.items() if old.get(key) != conf]
        # every error before anything changes
        built = [(*_make_driver(ups, s, conf), conf) for s, conf in start]
        restarted = {s.name.lower() for s, _ in start}
        for key in [k for k in old if k not in new or k in restarted]:
            del self.configs[key]
            drv = self.drivers.pop(key)
            await self._stop_driver(drv)
            self.core.remove_device(drv.device)
            self.devices.remove(drv.device)
            log.info("UPS [%s] removed", drv.device.name)
        for dev, drv, conf in built:
            self.devices.append(dev)
            self.core.add_device(dev)
            self.drivers[dev.name.lower()] = drv
            self.configs[dev.name.lower()] = conf
            self.history.watch([dev])
            self._start_driver(dev.name.lower(), drv)
            log.info("UPS [%s] started (driver %s)", dev.name, dev.driver_name)
        if self.cfg.attach is not None:
            # as the C upsd lists them after a reload: the new UPS first (in file order), then
            # those it had, where they were (a re-attached one keeps its place)
            fresh = [key for key in new if key not in listed]
            place = {key: i for i, key in enumerate(fresh + [k for k in listed if k in new])}
            self.core.devices.sort(key=lambda d: place.get(d.name.lower(), len(place)))
        self.cfg.ups = ups
        self.cfg.sections = list(ups.sections)
        if self.frontend is not None:
            self.frontend.devices_changed()

    async def start(self) -> None:
        _raise_file_limit()
        self.history.server_started(len(self.devices))
        for name, drv in self.drivers.items():
            self._start_driver(name, drv)
        try:
            await self._auto_tls()
            await self.upsd.start()
        except BaseException:
            await self.stop()
            raise
        if self.cfg.zeroconf:
            self.advertiser = Advertiser(self.upsd.bound, lambda: self.state.server_id, self.cfg.upsd.push,
                                         self.tls_sha256)
            self.advertiser.start()
        try:
            await self._start_frontends()
        except BaseException:
            await self.stop()
            raise
        await self.hooks.start()

    async def _start_frontends(self) -> None:
        conf = self.cfg.upsd
        if not conf.http_listen and conf.mqtt is None:
            return
        self.frontend = Frontend(self.core, self.history, conf, lambda: self.state.server_id,
                                 __version__, self.ssl_context, self.tls_sha256)
        if conf.http_listen:
            from .web.server import WebServer

            self.web = WebServer(self.frontend, conf.http_listen, self.upsd.family)
            await self.web.start()  # ListenError as upsd's: exit 1
        if conf.mqtt is not None:
            from .mqtt.publisher import MqttPublisher

            self.mqtt = MqttPublisher(self.frontend, conf.mqtt)
            await self.mqtt.start()  # connects in the background: a broker that is down waits

    async def _listen_addresses(self) -> list[tuple[str, int]]:
        """The socket addresses LISTEN resolves to, as upsd will bind them (errors: upsd's)."""
        loop = asyncio.get_running_loop()
        out: list[tuple[str, int]] = []
        for lst in self.cfg.upsd.listeners():
            for host in ["0.0.0.0", "::"] if lst.host == "*" else [lst.host]:
                try:
                    infos = await loop.getaddrinfo(host, lst.port, family=self.upsd.family,
                                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
                except (socket.gaierror, UnicodeError):
                    continue
                out += [(str(info[4][0]), int(info[4][1])) for info in infos]
        return out

    async def _auto_tls(self) -> None:
        """No CERTFILE, listening beyond loopback: STARTTLS with the bridge's own certificate.

        Decided before upsd binds (so no client is ever told STARTTLS is not configured by a
        bridge that offers it), on what LISTEN resolves to, with the advertisement's rule
        (:func:`~nutbridge.server.zeroconf.reachable`). Never fatal: without a usable state
        directory (or the ``cryptography`` package) the bridge serves in clear, after one
        warning."""
        conf = self.cfg.upsd
        if self.ssl_context is not None or conf.auto_tls is False:
            return
        addresses = await self._listen_addresses()
        if not reachable(addresses):
            return
        state = self.state.path
        if state is None:  # StateDir has warned
            log.warning("TLS: no state directory to keep a certificate in: STARTTLS is not offered "
                        "(set CERTFILE in upsd.conf, or --state-dir)")
            return
        try:
            cert = selfsigned.ensure(state, addresses)
            ctx = make_ssl_context(conf, cert.path)
        except ImportError:
            log.warning("TLS: the cryptography package is not installed: STARTTLS is not offered")
            return
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("TLS: cannot use a certificate in %s (%s): STARTTLS is not offered",
                        selfsigned.cert_path(state).parent, exc)
            return
        self.ssl_context = self.upsd.ssl_context = ctx
        self.core.tls_available = True
        self.tls_sha256 = cert.sha256
        if not cert.created:
            log.info("TLS: STARTTLS with %s, SHA-256 %s", cert.path, cert.sha256)

    async def stop(self) -> None:
        self.history.server_stopping()
        await self.hooks.stop()  # first: killpower needs the drivers
        if self.advertiser is not None:
            await self.advertiser.stop()  # goodbyes while still reachable
        for service in (self.mqtt, self.web):  # MQTT first: its "offline" while data is true
            if service is not None:
                await service.stop()
        await self.upsd.close()
        for drv in self.drivers.values():
            drv.stop()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        for drv in self.drivers.values():
            try:
                await drv.close()
            except Exception:
                pass
        self.history.close()  # fsync: a clean stop keeps every record


def _raise_file_limit(want: int = 65536) -> None:
    """Lift the soft limit on open files towards the hard one: every client, driver, HTTP and
    MQTT connection is a descriptor, and systemd's (and a shell's) soft default of 1024 is what
    MAXCONN and the HTTP caps would otherwise meet first."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.debug("open files: soft limit %d -> %d", soft, target)
    except (ImportError, ValueError, OSError) as exc:  # not POSIX, or not allowed: keep going
        log.debug("open files: limit left as it is (%s)", exc)


def _make_driver(ups: UpsConf, s: UpsSection, conf: dict[str, str]) -> tuple[Device, Driver]:
    dev = Device(s.name, s.desc, s.driver)
    try:
        return dev, create_driver(dev, conf)
    except DriverConfigError as exc:
        raise ConfigError(f"UPS [{s.name}]: {exc}", ups.path, s.line) from None
