"""``nutbridge`` command line: ``serve`` plus NUT-compatible client tools and roles.

``nutbridge upsc ...`` behaves like NUT's ``upsc ...`` (same arguments, output and
exit codes); likewise upscmd, upsrw and upslog.

Run under the name of a driver the bridge implements natively (a link or copy named
``dummy-ups``, ``nutdrv_qx``, ``usbhid-ups``... pointing at the ``nutbridge`` script, put in
NUT's ``driverpath``), the program is that driver: ``dummy-ups -a ups`` is
``nutbridge driver --name dummy-ups -a ups`` (docs/driver-process.md). Likewise a link
named ``upssched`` is ``nutbridge upssched``, so upsmon's NOTIFYCMD can name it where
NUT's /sbin/upssched would be (docs/upssched.md).
"""

from __future__ import annotations

import importlib
import os
import sys

TOOLS = {
    "serve": "nutbridge.server.main",
    "app": "nutbridge.app",
    "upsd": "nutbridge.upsd_main",
    "driver": "nutbridge.driver_main",
    "upsc": "nutbridge.tools.upsc",
    "upscmd": "nutbridge.tools.upscmd",
    "upsrw": "nutbridge.tools.upsrw",
    "upslog": "nutbridge.tools.upslog",
    "monitor": "nutbridge.monitor.main",
    "killpower": "nutbridge.monitor.killpower",
    "events": "nutbridge.events.main",
    "upssched": "nutbridge.upssched.main",
    "simulate": "nutbridge.simulation.main",
    "udev-rules": "nutbridge.drivers.usbhid.driver",
    "service": "nutbridge.service",
    "scan": "nutbridge.scan.main",
}

USAGE = """\
usage: nutbridge COMMAND [ARGS...]

commands:
  serve      run the bridge (drivers + upsd) from NUT configuration files
  app        entry point of the Home Assistant app: options.json -> NUT files, serve, discovery
  upsd       NUT's upsd: serve the drivers that upsdrvctl or systemd started (no drivers of its own)
  driver     run one of the bridge's drivers as a NUT driver process for a C upsd (-a <ups>)
  upsc       NUT's upsc: list UPSes, show variables
  upscmd     NUT's upscmd: list or run instant commands
  upsrw      NUT's upsrw: list or set writable variables
  upslog     NUT's upslog: log UPS status periodically
  monitor    NUT's upsmon: shut this host down safely (upsmon.conf, primary or secondary)
  killpower  tell the UPS to cut the power and restore it on mains (end of a shutdown)
  upssched   NUT's upssched: timers for upsmon's NOTIFYCMD (upssched.conf)
  events     list the event history (power events, commands and who ran them, shutdowns)
  simulate   simulate a serial UPS (megatec, apcsmart) on a pty, to try drivers without hardware
  udev-rules print udev rules giving the nut group access to USB UPSes (usbhid-ups)
  service    print or install the systemd unit, its user and the udev rules (print|install)
  scan       NUT's nut-scanner: find UPSes (USB; serial, SNMP, NUT servers when asked) -> ups.conf

'nutbridge COMMAND -h' shows a command's options.
"""


#: names this program has when it is not run as a driver (the driver check imports the registry)
_OWN_NAMES = frozenset({"nutbridge", "nutbridge.exe", "__main__.py", "-c", "-m", ""})


def driver_name(argv0: str) -> str | None:
    """The native driver this program acts as when invoked as ``argv0``, else None."""
    name = os.path.basename(argv0)
    if name in _OWN_NAMES:
        return None
    from .drivers import is_native

    return name if is_native(name) else None


#: NUT programs the ``nutbridge`` script is when run under their name (a link or copy)
LINKED_TOOLS = {"upssched": "nutbridge.upssched.main"}


def main(argv: list[str] | None = None) -> int:
    # checked before the drivers: upssched runs at each notification, the driver registry is not needed
    if argv is None and sys.argv and (linked := LINKED_TOOLS.get(os.path.basename(sys.argv[0]))):
        rc: int = importlib.import_module(linked).main(sys.argv[1:], argv0=sys.argv[0])
        return rc
    if argv is None and sys.argv and (name := driver_name(sys.argv[0])) is not None:
        from .driver_main import main as driver_main

        return driver_main(sys.argv[1:], progname=name)
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        from . import __version__

        print(f"nutbridge {__version__}")
        return 0
    target = TOOLS.get(args[0])
    if target is None:
        sys.stderr.write(f"nutbridge: unknown command '{args[0]}'\n\n{USAGE}")
        return 2
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("nutbridge"):
            sys.stderr.write(f"nutbridge: '{args[0]}' is not available in this version\n")
            return 2
        raise
    rc = module.main(args[1:])
    return rc


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
