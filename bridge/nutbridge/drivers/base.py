"""Driver API.

A driver owns one :class:`~nutbridge.state.Device` and keeps it current. The
base class runs the life cycle every family needs, so a family only writes
transport and mapping code:

``connect()``  reach the device (open the port, find the USB device, log in to
               a remote upsd...). Raise :class:`DeviceError` when it is not there.
``update()``   one full refresh of the device's data (a serial poll, an SNMP
               walk, a HID feature-report sweep, a remote ``LIST VAR``).
``wait()``     sleep until the next refresh is due. Interrupt-driven drivers
               override it to wake up early on an event (HID interrupt IN, an
               alert byte on a serial line) and may update the device there.
``close()``    release the transport.

Failures raise :class:`DeviceError` (or ``OSError``/``TimeoutError``): the base
marks the data stale, closes, and reconnects with backoff, forever. So an
unplugged UPS goes ``DATA-STALE`` and recovers by itself when it comes back.

Commands and writes arrive through :meth:`instcmd` / :meth:`setvar`, which
return upstream's status codes (:class:`Status`); upsd turns those into
TRACKING results.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import ClassVar

from ..state import Device, DriverState

# Driver-core commands of NUT >= 2.8.3 (the C driver core handles them itself).
CORE_CMDS = ("driver.killpower", "driver.reload", "driver.reload-or-error", "driver.reload-or-exit",
             "shutdown.default")

log = logging.getLogger(__name__)


class Status(enum.IntEnum):
    """Upstream's STAT_INSTCMD_* / STAT_SET_* values (drivers/upshandler.h)."""

    HANDLED = 0
    UNKNOWN = 1
    INVALID = 2
    FAILED = 3
    CONVERSION_FAILED = 4


class DeviceError(Exception):
    """The device is unreachable or answered nonsense; reconnect later."""


class ConfigError(Exception):
    """A driver option in ups.conf is wrong (reported as file:line)."""


class KillpowerError(Exception):
    """The UPS could not be told to cut and restore its output."""


class Driver:
    """Base class of every driver family."""

    #: the ``driver =`` names in ups.conf this class serves
    names: ClassVar[tuple[str, ...]] = ()
    #: ups.conf options the driver understands (others are warned about)
    options: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[str] = "0.1"
    #: the UPS is powered off by another host (a repeater of a remote upsd): killpower is not ours
    remote_source: ClassVar[bool] = False

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        self.device = device
        self.config = dict(config)
        self.pollinterval = float(self.config.get("pollinterval", "2") or 2)
        self.retry_min = 0.5
        self.retry_max = 10.0
        self._wake = asyncio.Event()
        self._stopping = False
        self.connected = False
        self.failures = 0
        self.last_error: str | None = None
        self.reconnects = 0

    # ---- to implement -------------------------------------------------------
    async def connect(self) -> None:
        """Reach the device. Raise DeviceError when absent."""

    async def update(self) -> None:
        """Refresh all data into ``self.device``."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the transport; must not raise."""

    async def instcmd(self, cmd: str, param: str | None) -> Status:
        return Status.UNKNOWN

    async def setvar(self, name: str, value: str) -> Status:
        return Status.UNKNOWN

    async def killpower(self, ondelay: float | None = None, offdelay: float | None = None) -> str:
        """Cut the output ``offdelay`` s from now and restore it ``ondelay`` s after
        mains is back: NUT's ``upsdrvctl shutdown``, run once the host has shut down.

        The default uses the device's instant commands. On battery, ``shutdown.return``:
        the UPS restarts by itself when mains returns. On mains (it came back while the
        host was shutting down, NUT #3229) a "return" would leave many UPSes off for
        good, as the return event is already over: power-cycle instead, so the host
        never stays dark. Delays default to ups.conf's ``ondelay`` / ``offdelay``.
        Returns what was sent; raises :class:`KillpowerError`.
        """
        dev = self.device
        ondelay = _delay(ondelay, self.config.get("ondelay"))
        offdelay = _delay(offdelay, self.config.get("offdelay"))
        for var, value in (("ups.delay.shutdown", offdelay), ("ups.delay.start", ondelay)):
            v = dev.get(var)
            if value is not None and v is not None and v.rw:
                status = await self.setvar(var, str(round(value)))
                if status != Status.HANDLED:
                    log.warning("UPS [%s]: killpower: SET %s %s -> %s", dev.name, var,
                                round(value), Status(status).name)
        off = offdelay if offdelay is not None else finite_number(dev.value("ups.delay.shutdown"))
        on = ondelay if ondelay is not None else finite_number(dev.value("ups.delay.start"))
        on_battery = "OB" in dev.status_tokens()
        # the on-timer runs from the command too, so it must outlast the off-timer
        cycle: list[tuple[str, str | None]] = [
            ("load.off.delay", _param(off)),
            ("load.on.delay", _param(None if off is None or on is None else off + on)),
        ]
        plans: list[list[tuple[str, str | None]]]
        if on_battery:
            plans = [[("shutdown.return", None)], [("load.off.delay", _param(off))]]
        else:
            plans = [[("shutdown.reboot", None)], cycle, [("shutdown.return", None)]]
        for plan in plans:
            if not all(dev.has_cmd(cmd) for cmd, _ in plan):
                continue
            if plan is plans[-1]:
                log.warning("UPS [%s]: killpower: only %s is available; whether the load comes "
                            "back depends on the UPS's own restart setting", dev.name, plan[0][0])
            done: list[str] = []
            for cmd, param in plan:
                status = await self.instcmd(dev.canonical_cmd(cmd), param)
                if status != Status.HANDLED:
                    raise KillpowerError(f"{cmd} -> {Status(status).name}"
                                         + (f" (after {', '.join(done)})" if done else ""))
                done.append(cmd if param is None else f"{cmd} {param}")
            return ", ".join(done)
        raise KillpowerError("the UPS offers none of shutdown.return, shutdown.reboot, "
                             "load.off.delay")

    # ---- provided -----------------------------------------------------------
    async def wait(self, period: float | None = None) -> None:
        """Sleep ``period`` seconds (default: ``pollinterval``), or until :meth:`poke` is called.

        A longer period (SNMP's ``pollfreq``, a dummy-ups ``TIMER``) still tells the device state
        "alive" every ``pollinterval``, as NUT's driver loop does between polls: otherwise upsd's
        MAXAGE would call the data stale while the driver merely waits."""
        deadline = time.monotonic() + (self.pollinterval if period is None else period)
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives
                # with the wake-up (stop() pokes, then the task is cancelled), and the driver
                # then polled a dead device through its whole timeout before it stopped
                async with asyncio.timeout(min(self.pollinterval, remaining)):
                    await self._wake.wait()
            except TimeoutError:
                self.device.heard()
                continue
            break
        self._wake.clear()

    def poke(self) -> None:
        """Ask for an immediate refresh (after a command, for instance)."""
        self._wake.set()

    def publish_status(self, tokens: Iterable[str], alarms: Iterable[str] = (), *,
                       alarm_last: bool = False) -> None:
        """Set ``ups.status`` and ``ups.alarm`` together (see :func:`compose_status`)."""
        status, alarm = compose_status(tokens, alarms, alarm_last=alarm_last)
        dev = self.device
        with dev.batch():
            if alarm is None:
                dev.delete("ups.alarm")
            else:
                dev.set("ups.alarm", alarm)
            dev.set("ups.status", status)

    def publish_core_extras(self) -> None:
        """What NUT 2.8.5's driver core adds to every driver (only under that release profile)."""
        from ..compat import driver_core_2_8_5

        if not driver_core_2_8_5():
            return
        dev = self.device
        dev.set("driver.debug", "0", rw=True, string=False)
        dev.set("driver.flag.allow_killpower", "0", rw=True, string=False)
        dev.set("driver.state", "quiet")
        for cmd in CORE_CMDS:
            dev.add_cmd(cmd)

    def publish_driver_info(self) -> None:
        """driver.* variables as NUT drivers publish them."""
        dev = self.device
        with dev.batch():
            dev.set("driver.name", self.device.driver_name or self.names[0])
            dev.set("driver.version", _bridge_version())
            dev.set("driver.version.internal", self.version)
            for key, value in sorted(self.config.items()):
                # "_" keys are the config loader's own (e.g. _confdir), not ups.conf options
                if key.startswith("_") or key in _UNPUBLISHED:
                    continue
                dev.set(f"driver.parameter.{key}", value)

    async def run(self) -> None:
        """Connect, poll, reconnect: until cancelled."""
        delay = self.retry_min
        while not self._stopping:
            try:
                await self.connect()
                self.connected = True
                self.device.driver_connected()
                await self.update()
                if self.reconnects or self.failures:
                    log.info("UPS [%s]: communication restored", self.device.name)
                self.device.data_ok()
                self.failures = 0
                delay = self.retry_min
                while not self._stopping:
                    await self.wait()
                    if self._stopping:
                        break  # stop() woke the wait: no last poll
                    await self.update()
                    self.device.data_ok()
            except asyncio.CancelledError:
                raise
            except (DeviceError, OSError, TimeoutError, EOFError) as exc:
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                if self.failures == 1 or self.failures % 10 == 0:
                    log.warning("UPS [%s]: %s (retrying)", self.device.name, self.last_error)
            except Exception:
                self.failures += 1
                self.last_error = "driver error"
                log.exception("UPS [%s]: driver error (restarting driver)", self.device.name)
            finally:
                if self.connected:
                    self.reconnects += 1
                self.connected = False
                if self.device.driver_state is not DriverState.NOT_CONNECTED:
                    self.device.data_stale()
                await self.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def stop(self) -> None:
        self._stopping = True
        self.poke()


# never echoed as driver.parameter.*: identity (desc, driver) and secrets
_UNPUBLISHED = frozenset(
    {"driver", "desc", "password", "authpassword", "privpassword", "community", "username"}
)


def finite_number(text: str | None) -> float | None:
    """A device or config value as a number: None when absent, not a number, inf or nan
    (a NaN delay or voltage must never reach arithmetic or a device)."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def option_number(config: Mapping[str, str], name: str, default: float, minimum: float = 0.0, *,
                  above: bool = False, what: str = "a number") -> float:
    """A numeric ups.conf option: ``default`` when absent or empty, else a finite number
    ``>= minimum`` (``> minimum`` with ``above``); anything else is a :class:`ConfigError`
    naming the option, which the loader reports as file:line."""
    text = config.get(name, "")
    if text == "":
        return default
    value = finite_number(text)
    if value is None:
        raise ConfigError(f"{name} must be {what}, not {text!r}")
    if value < minimum or (above and value == minimum):
        raise ConfigError(f"{name} must be {'>' if above else '>='} {minimum:g}, not {text!r}")
    return value


def compose_status(tokens: Iterable[str], alarms: Iterable[str], *,
                   alarm_last: bool = False) -> tuple[str, str | None]:
    """``(ups.status, ups.alarm)`` from status tokens and alarm texts, as NUT's driver core
    commits them: ``ALARM`` leads the status while any alarm is on (dummy-ups appends it to
    the file's status instead: ``alarm_last``), texts are joined by spaces, duplicates and
    empty tokens dropped; ``ups.alarm`` is None when there is no alarm (the variable is
    deleted, not set empty)."""
    texts = list(dict.fromkeys(a for a in alarms if a))
    words = [t for t in tokens if t and t != "ALARM"]
    if texts:
        words = [*words, "ALARM"] if alarm_last else ["ALARM", *words]
    return " ".join(dict.fromkeys(words)), (" ".join(texts) if texts else None)


def _delay(given: float | None, option: str | None) -> float | None:
    return given if given is not None else finite_number(option)


def _param(delay: float | None) -> str | None:
    return None if delay is None else str(round(delay))


def _bridge_version() -> str:
    from .. import __version__

    return __version__

