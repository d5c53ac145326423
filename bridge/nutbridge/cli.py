"""``nutbridge`` command line: ``serve`` plus NUT-compatible client tools.

``nutbridge upsc ...`` behaves like NUT's ``upsc ...`` (same arguments, output and
exit codes); likewise upscmd, upsrw and upslog.
"""

from __future__ import annotations

import importlib
import sys

TOOLS = {
    "serve": "nutbridge.server.main",
    "upsc": "nutbridge.tools.upsc",
    "upscmd": "nutbridge.tools.upscmd",
    "upsrw": "nutbridge.tools.upsrw",
    "upslog": "nutbridge.tools.upslog",
    "monitor": "nutbridge.monitor.main",
    "killpower": "nutbridge.monitor.killpower",
    "events": "nutbridge.events.main",
    "simulate": "nutbridge.simulation.main",
    "udev-rules": "nutbridge.drivers.usbhid.driver",
}

USAGE = """\
usage: nutbridge COMMAND [ARGS...]

commands:
  serve      run the bridge (drivers + upsd) from NUT configuration files
  upsc       NUT's upsc: list UPSes, show variables
  upscmd     NUT's upscmd: list or run instant commands
  upsrw      NUT's upsrw: list or set writable variables
  upslog     NUT's upslog: log UPS status periodically
  monitor    NUT's upsmon: shut this host down safely (upsmon.conf, primary or secondary)
  killpower  tell the UPS to cut the power and restore it on mains (end of a shutdown)
  events     list the event history (power events, commands and who ran them, shutdowns)
  simulate   simulate a serial UPS (megatec, apcsmart) on a pty, to try drivers without hardware
  udev-rules print udev rules giving the nut group access to USB UPSes (usbhid-ups)

'nutbridge COMMAND -h' shows a command's options.
"""


def main(argv: list[str] | None = None) -> int:
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
    rc: int = module.main(args[1:])
    return rc


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
