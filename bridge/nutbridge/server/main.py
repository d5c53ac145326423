"""``nutbridge serve``: run drivers and upsd from NUT configuration files.

Exit codes: 0 on SIGTERM/SIGINT, 2 on a configuration error (printed as
``file:line: message``, no traceback), 1 when the bridge cannot start
(e.g. the port is already in use).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .. import __version__, sdnotify
from ..config.parser import ConfigError
from ..config.upsd_conf import DEFAULT_HTTP_PORT, DEFAULT_PORT, Listen, parse_mqtt_url
from ..serve import Bridge, BridgeConfig, load_config
from .upsd import ListenError

log = logging.getLogger("nutbridge")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nutbridge serve",
        description="Serve UPSes from NUT configuration files (ups.conf, upsd.conf, upsd.users). "
        "Without a configuration directory (--config-dir or NUT_CONFPATH) one simulated UPS "
        "is served on 127.0.0.1:3493.",
    )
    p.add_argument("-c", "--config-dir", type=Path, default=None,
                   help="directory with ups.conf, upsd.conf and upsd.users (default: $NUT_CONFPATH)")
    p.add_argument("-D", dest="debug", action="count", default=0, help="more log output (repeatable)")
    p.add_argument("-q", dest="quiet", action="count", default=0, help="less log output (repeatable)")
    p.add_argument("-F", dest="foreground", action="count", default=0,
                   help="stay in the foreground (always; accepted for upsd compatibility)")
    p.add_argument("-u", dest="user", default=None, help="accepted for upsd compatibility; ignored")
    p.add_argument("-l", "--listen", action="append", default=[], metavar="ADDR[:PORT]",
                   help="listen here instead of upsd.conf's LISTEN lines (repeatable; "
                   "IPv6 as [::1]:3493)")
    p.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                   help="persistent state: server id, event history, generated TLS certificate "
                   "(default: <STATEPATH>/nut-bridge when upsd.conf STATEPATH or $NUT_STATEPATH is "
                   "set, else $STATE_DIRECTORY, else /var/lib/nut-bridge for /etc/nut and the "
                   "embedded configuration, /var/lib/nut-bridge/config/<name>-<hash> for another "
                   "config dir; under ~/.local/state/nut-bridge when /var/lib is not writable; "
                   "docs/discovery.md)")
    p.add_argument("--http", action="append", default=[], metavar="ADDR[:PORT]",
                   help="serve the status page, /metrics and /api here (repeatable; port "
                   f"{DEFAULT_HTTP_PORT} unless given; replaces upsd.conf's HTTP_LISTEN lines; "
                   "docs/http.md)")
    p.add_argument("--mqtt", metavar="URL", default=None,
                   help="publish to this MQTT broker, mqtt://host[:port] or mqtts://... (replaces "
                   "upsd.conf's MQTT_URL; credentials and the rest: MQTT_* in upsd.conf; "
                   "docs/mqtt.md)")
    p.add_argument("--no-zeroconf", dest="zeroconf", action="store_false",
                   help="do not advertise _nut._tcp over mDNS (by default a bridge listening on "
                   "a non-loopback address is advertised)")
    p.add_argument("--no-monitor", dest="monitor", action="store_false",
                   help="do not run the monitor of upsmon.conf in this process (see docs/shutdown.md)")
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    fam.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    p.add_argument("-V", "--version", action="version", version=f"nutbridge {__version__}")
    return p


def _setup_logging(level: int) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _banner(cfg: BridgeConfig, bridge: Bridge) -> None:
    if not cfg.embedded:
        return
    host, port = bridge.upsd.bound[0]
    name = cfg.sections[0].name
    where = f"{name}@{host}:{port}" if port != 3493 else f"{name}@{host}"
    print(
        f"NUT Bridge {__version__}: serving a simulated UPS (no configuration given).\n"
        f"  query it:   upsc {where}      (or: nutbridge upsc {where})\n"
        f"  mains loss: upscmd -u admin -p {cfg.generated_password} {where} test.failure.start\n"
        f"  restore:    upscmd -u admin -p {cfg.generated_password} {where} test.failure.stop\n"
        "  your own UPS: nutbridge serve --config-dir /etc/nut",
        flush=True,
    )


async def _serve(cfg: BridgeConfig, family: int) -> int:
    # Signals first: a SIGTERM that arrives once anything is reachable (the listener
    # opens inside bridge.start()) must end in a clean stop and exit 0, as upsd's.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        bridge = Bridge(cfg, family)
    except ConfigError as exc:
        sys.stderr.write(f"nutbridge: {exc}\n")
        return 2
    try:
        await bridge.start()
    except ListenError as exc:
        sys.stderr.write(f"nutbridge: {exc}\n")
        if "in use" in str(exc):
            hint = "HTTP_LISTEN in upsd.conf or --http" if str(exc).startswith("HTTP:") else \
                "LISTEN in upsd.conf"
            sys.stderr.write("nutbridge: another upsd (or bridge) is probably running; stop it or "
                             f"choose another port with {hint}\n")
        return 1
    if hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(bridge))
    if hasattr(signal, "SIGUSR1"):  # as upsmon: USR1 = forced shutdown; USR2 = `nutbridge killpower`
        loop.add_signal_handler(signal.SIGUSR1, bridge.hooks.fsd)
        loop.add_signal_handler(signal.SIGUSR2, bridge.hooks.killpower)
    if not stop.is_set():
        _banner(cfg, bridge)
        log.info("NUT Bridge %s started: %d UPS, config %s, event loop %s", __version__, len(bridge.devices),
                 cfg.confdir or "embedded", type(loop).__module__.split(".")[0])
        # systemd (Type=notify): started only now, with upsd listening and the drivers running
        sdnotify.ready(status_line(bridge))
        await stop.wait()
    log.info("Signal received, exiting")
    sdnotify.stopping()
    await bridge.stop()
    return 0


def status_line(bridge: Bridge) -> str:
    """What ``systemctl status`` shows (sd_notify ``STATUS=``): the UPSes and where upsd listens."""
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in bridge.upsd.bound)
    tls = ", STARTTLS" if bridge.upsd.ssl_context is not None else ""
    return f"serving {len(bridge.devices)} UPS on {where or 'nothing'}{tls}"


def _reload(bridge: Bridge) -> None:
    # systemd sees the reload from RELOADING=1 to READY=1 (sent when it is applied or refused)
    sdnotify.reloading()
    if not _reload_files(bridge):
        sdnotify.ready(status_line(bridge))


def _reload_files(bridge: Bridge) -> bool:
    """SIGHUP: upsmon.conf, upsd.users and ups.conf again. True when a task applying ups.conf
    was started (it sends READY=1 when done), False when the reload is over already."""
    bridge.hooks.reload()  # upsmon.conf, when the monitor runs here
    cfg = bridge.cfg
    if cfg.confdir is None:
        return False
    from ..config.ups_conf import parse_ups_conf
    from ..config.users import parse_users

    try:
        users_path = cfg.confdir / "upsd.users"
        users = parse_users(users_path) if users_path.is_file() else None
        ups = parse_ups_conf(cfg.confdir / "ups.conf")
    except ConfigError as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
        return False
    if users is not None:
        bridge.core.users = users
    if bridge.core.hosts_access is not None:
        bridge.core.hosts_access.reload()

    async def apply() -> None:
        try:
            await bridge.reload_ups(ups)
        except ConfigError as exc:
            log.error("ups.conf not applied, keeping the running UPS: %s", exc)
        finally:
            sdnotify.ready(status_line(bridge))
        log.info("Configuration reloaded (upsd.users, ups.conf)")
        bridge.history.record("server", None, "configuration reloaded")

    task = asyncio.get_running_loop().create_task(apply(), name="reload")
    _reloads.add(task)
    task.add_done_callback(_reloads.discard)
    return True


_reloads: set[asyncio.Task[None]] = set()


def _parse_listen(text: str, default_port: int = DEFAULT_PORT) -> Listen:
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.lstrip(":"))
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = int(p)
    if not 0 < port < 65536 or not host:
        raise ValueError(f"invalid address {text!r}")
    return Listen(host, port)


def run_event_loop(coro: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, on uvloop when it is installed (a default dependency where it has
    wheels): it roughly halves the loop's cost per request. NUTBRIDGE_UVLOOP=0: asyncio's."""
    if os.environ.get("NUTBRIDGE_UVLOOP", "1").strip() not in ("0", "false", "no", "off"):
        try:
            import uvloop
        except ImportError:
            pass
        else:
            log.debug("event loop: uvloop %s", getattr(uvloop, "__version__", "?"))
            return uvloop.run(coro)
    return asyncio.run(coro)


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    # Until the event loop takes the signals over, a SIGTERM ends start-up with exit 0.
    signal.signal(signal.SIGTERM, _early_exit)
    args = _parser().parse_args(argv)
    level = logging.INFO - 10 * args.debug + 10 * args.quiet
    _setup_logging(max(logging.DEBUG, min(logging.CRITICAL, level)))
    confdir = args.config_dir
    if confdir is None and os.environ.get("NUT_CONFPATH"):
        confdir = Path(os.environ["NUT_CONFPATH"])
    try:
        cfg = load_config(confdir)
    except ConfigError as exc:
        sys.stderr.write(f"nutbridge: {exc}\n")
        return 2
    if args.listen:
        try:
            cfg.upsd.listen = [_parse_listen(x) for x in args.listen]
        except ValueError as exc:
            sys.stderr.write(f"nutbridge: --listen: {exc}\n")
            return 2
    if args.http:
        try:
            cfg.upsd.http_listen = [_parse_listen(x, DEFAULT_HTTP_PORT) for x in args.http]
        except ValueError as exc:
            sys.stderr.write(f"nutbridge: --http: {exc}\n")
            return 2
    if args.mqtt is not None:
        try:
            url = parse_mqtt_url(args.mqtt)
        except ValueError as exc:
            sys.stderr.write(f"nutbridge: --mqtt: {exc}\n")
            return 2
        if cfg.upsd.mqtt is not None:  # keep the file's credentials, account and topics
            url = dataclasses.replace(cfg.upsd.mqtt, host=url.host, port=url.port, tls=url.tls)
        cfg.upsd.mqtt = url
    cfg.state_dir = args.state_dir
    cfg.zeroconf = args.zeroconf
    cfg.monitor = args.monitor
    family = socket.AF_INET if args.ipv4 else socket.AF_INET6 if args.ipv6 else 0
    try:
        return run_event_loop(_serve(cfg, family))
    except ssl.SSLError as exc:
        sys.stderr.write(f"nutbridge: {cfg.upsd.path}: CERTFILE {cfg.upsd.certfile}: {exc}\n")
        return 2
    except (FileNotFoundError, PermissionError) as exc:
        if cfg.upsd.certfile and exc.filename in (cfg.upsd.certfile, None):
            sys.stderr.write(f"nutbridge: {cfg.upsd.path}: cannot load CERTFILE {cfg.upsd.certfile}: "
                             f"{exc.strerror}\n")
            return 2
        raise
    except KeyboardInterrupt:
        return 0
