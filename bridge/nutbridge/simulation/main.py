"""``nutbridge simulate megatec|apcsmart --link PATH``: a serial UPS on a pty.

Point a serial driver (ours, or NUT's) at ``PATH`` to try it without hardware::

    nutbridge simulate megatec --link /tmp/ttyUPS0 --speed 10 &
    # ups.conf:  [ups]  driver = nutdrv_qx  port = /tmp/ttyUPS0

Protocol modules live next to this one (``nutbridge.simulation.<protocol>``) and
define one :class:`~nutbridge.simulation.pty.PtyDevice` subclass, built as
``cls(link, speed=...)`` (``speed``: simulated seconds per real second).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import signal
from typing import Any

from .pty import PtyDevice

PROTOCOLS = ("megatec", "apcsmart")


def simulator_class(protocol: str) -> type[PtyDevice]:
    """The PtyDevice subclass a protocol module defines."""
    module = importlib.import_module(f"nutbridge.simulation.{protocol}")
    for obj in vars(module).values():
        if (inspect.isclass(obj) and issubclass(obj, PtyDevice) and obj is not PtyDevice
                and obj.__module__ == module.__name__):
            return obj
    raise LookupError(f"nutbridge.simulation.{protocol} defines no simulator")


def create(name: str, link: str, /, *, speed: float = 1.0, **kwargs: Any) -> PtyDevice:
    """Build the simulator of protocol ``name``; ``kwargs`` go to its constructor."""
    cls = simulator_class(name)
    if "speed" in inspect.signature(cls).parameters:
        kwargs["speed"] = speed
    return cls(link, **kwargs)


async def _serve(dev: PtyDevice) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    async with dev:
        print(f"simulated {type(dev).__name__} on {dev.link} (Ctrl-C to stop)", flush=True)
        await done.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nutbridge simulate",
                                 description="Simulate a serial UPS on a pseudo-terminal.")
    ap.add_argument("protocol", choices=PROTOCOLS)
    ap.add_argument("--link", required=True, help="path of the symlink to create (the 'port' for a driver)")
    ap.add_argument("--speed", type=float, default=1.0,
                    help="simulated seconds per real second (default 1)")
    ap.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a simulator option, e.g. protocol=voltronic for megatec (repeatable)")
    ap.add_argument("-D", "--debug", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    if args.speed <= 0:
        ap.error("--speed must be > 0")
    options: dict[str, str] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--option {item!r}: expected KEY=VALUE")
        options[key] = value
    try:
        cls = simulator_class(args.protocol)
    except (ImportError, LookupError) as exc:
        ap.error(f"{args.protocol}: simulator not available ({exc})")
    unknown = set(options) - set(inspect.signature(cls).parameters) - {"speed"}
    if unknown:
        ap.error(f"{args.protocol}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        dev = create(args.protocol, args.link, speed=args.speed, **options)
    except ValueError as exc:  # a bad option value, e.g. -o protocol=q9
        ap.error(f"{args.protocol}: {exc}")
    asyncio.run(_serve(dev))
    return 0
