"""dummy-ups repeater mode: mirror a UPS served by another upsd.

``driver = dummy-ups`` with ``port = ups@host[:port]`` (or ``mode = repeater``).
One persistent client connection polls ``LIST VAR`` every ``pollinterval``
(default 1 s). Remote ``driver.*`` variables are not copied; ours describe this
driver instead.

Beyond upstream's repeater (which gives every variable the flags of its file
mode and offers only a dead ``load.off``), we mirror the remote device fully:

* types (``GET TYPE``), enums and ranges, and the command list (``LIST CMD``);
* ``INSTCMD`` and ``SET`` are forwarded, logged in with the ups.conf options
  ``username`` / ``password`` (upstream does not forward at all); with TRACKING
  on the remote, the remote driver's own result is passed back;
* ``ERR DATA-STALE`` / ``DRIVER-NOT-CONNECTED`` from the remote, or a lost
  connection, make our copy stale; we reconnect by ourselves (upstream exits on
  a start-up failure unless ``repeater_disable_strict_start`` is set).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from ...client import NutClient, NutError
from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status, _bridge_version, option_number

log = logging.getLogger(__name__)

_PORT_RE = re.compile(r"^([^@\s]+)@(\[[^\]]+\]|[^:\s]+)(?::(\d+))?$")
# remote answers that mean "the UPS is there but its data is not"
_STALE = ("DATA-STALE", "DRIVER-NOT-CONNECTED")
# remote TRACKING / ERR results -> the status our upsd reports
_RESULT = {
    "SUCCESS": Status.HANDLED,
    "UNKNOWN": Status.UNKNOWN,
    "CMD-NOT-SUPPORTED": Status.UNKNOWN,
    "VAR-NOT-SUPPORTED": Status.UNKNOWN,
    "INVALID-ARGUMENT": Status.INVALID,
    "INVALID-VALUE": Status.INVALID,
    "TOO-LONG": Status.INVALID,
    "READONLY": Status.INVALID,
}
# sends one request to the remote and returns its tracking id, if any
_Send = Callable[[NutClient], Awaitable[str | None]]
# re-read the slow-changing metadata (RW list, commands) every this many polls
_META_EVERY = 30


def parse_target(port: str) -> tuple[str, str, int]:
    """``ups@host[:port]`` -> (ups, host, port); IPv6 hosts go in brackets."""
    m = _PORT_RE.match(port.strip())
    if not m:
        raise ConfigError(f"dummy-ups repeater: port must be ups@host[:port], not '{port}'")
    host = m.group(2).strip("[]")
    return m.group(1), host, int(m.group(3) or 3493)


class Repeater(Driver):
    names = ("dummy-ups",)
    options = frozenset({"mode", "username", "password", "synchronous",
                         "repeater_disable_strict_start"})
    version = "0.15"
    remote_source = True  # the remote host's primary kills the power, not us

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        self.pollinterval = option_number(self.config, "pollinterval", 1.0, above=True)
        self.ups, self.host, self.port = parse_target(self.config.get("port", ""))
        self.username = self.config.get("username")
        self.password = self.config.get("password")
        # Come back quickly after a remote restart, without hammering it.
        self.retry_min = min(0.5, self.pollinterval)
        self.retry_max = max(2.0, 2 * self.pollinterval)
        self.client: NutClient | None = None
        self.tracking = False
        self._typed: set[str] = set()  # names whose flags we have fetched
        self._remote: set[str] = set()  # names copied from the remote last poll
        self._polls = 0
        self._published = False

    # ---- life cycle ---------------------------------------------------------------
    async def connect(self) -> None:
        client = NutClient(self.host, self.port, timeout=max(5.0, 3 * self.pollinterval))
        try:
            await client.connect()
            if self.username and self.password:
                await client.authenticate(self.username, self.password)
            try:
                await client.set_tracking(True)
                self.tracking = True
            except NutError as exc:
                if exc.local:
                    raise
                self.tracking = False  # pre-2.8 upsd: plain OK answers only
        except NutError as exc:
            await client.close()
            raise DeviceError(f"{self.ups}@{self.host}:{self.port}: {exc.text}") from exc
        self.client = client
        self._typed.clear()
        self._polls = 0

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # closing must not raise; the socket may be dead
                log.debug("repeater close failed", exc_info=True)

    async def update(self) -> None:
        client = self.client
        if client is None:
            raise DeviceError("not connected")
        try:
            remote = await client.list_var(self.ups)
            refresh = self._polls % _META_EVERY == 0
            new = [n for n in remote if n.lower() not in self._typed and not _ours(n)]
            types = {n: await client.get_type(self.ups, n) for n in new}
            rw_names = set(await client.list_rw(self.ups)) if refresh else None
            cmds = await client.list_cmd(self.ups) if refresh else None
            extras = {n: await self._fetch_limits(client, n, t) for n, t in types.items()}
        except NutError as exc:
            if exc.code in _STALE:
                raise DeviceError(f"remote UPS {self.ups}: {exc.code}") from exc
            raise DeviceError(f"remote UPS {self.ups}: {exc.text}") from exc
        self._polls += 1
        self._apply(remote, types, extras, rw_names, cmds)

    async def _fetch_limits(self, client: NutClient, name: str, words: tuple[str, ...]
                            ) -> tuple[list[str], list[tuple[int, int]]]:
        enums = await client.list_enum(self.ups, name) if "ENUM" in words else []
        ranges: list[tuple[int, int]] = []
        if "RANGE" in words:
            for lo, hi in await client.list_range(self.ups, name):
                try:
                    ranges.append((int(lo), int(hi)))
                except ValueError:
                    pass
        return enums, ranges

    def _apply(self, remote: dict[str, str], types: dict[str, tuple[str, ...]],
               extras: dict[str, tuple[list[str], list[tuple[int, int]]]],
               rw_names: set[str] | None, cmds: list[str] | None) -> None:
        dev = self.device
        with dev.batch():
            if not self._published:
                self.publish_driver_info()
                self._published = True
            seen: set[str] = set()
            for name, value in remote.items():
                if _ours(name):
                    continue
                seen.add(name.lower())
                dev.set(name, value)
                words = types.get(name)
                if words is not None:
                    rw, string, aux = _flags(words)
                    dev.set(name, value, rw=rw, string=string, aux=aux)
                    enums, ranges = extras[name]
                    dev.set_enums(name, enums)
                    for lo, hi in ranges:
                        dev.add_range(name, lo, hi)
                    self._typed.add(name.lower())
            for gone in self._remote - seen:
                dev.delete(gone)
                self._typed.discard(gone)
            self._remote = seen
            if rw_names is not None:
                lowered = {n.lower() for n in rw_names}
                for var in dev.variables():
                    key = var.name.lower()
                    if key in seen and var.rw != (key in lowered):
                        self._typed.discard(key)  # flags changed remotely: fetch again
            if cmds is not None:
                wanted = {c.lower() for c in cmds}
                for c in dev.commands():
                    if c.lower() not in wanted:
                        dev.delete_cmd(c)
                for c in cmds:
                    dev.add_cmd(c)

    def publish_driver_info(self) -> None:
        dev, cfg = self.device, self.config
        with dev.batch():
            dev.set("driver.name", "dummy-ups")
            dev.set("driver.version", _bridge_version())
            dev.set("driver.version.internal", self.version)
            dev.set("driver.parameter.mode", "repeater")
            dev.set("driver.parameter.pollinterval", cfg.get("pollinterval") or "1")
            dev.set("driver.parameter.port", cfg.get("port", ""))
            dev.set("driver.parameter.synchronous", cfg.get("synchronous", "auto"))
            if "repeater_disable_strict_start" in cfg:
                dev.set("driver.flag.repeater_disable_strict_start", "enabled")

    # ---- forwarding -----------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        return await self._forward(lambda c: c.instcmd(self.ups, cmd, param))

    async def setvar(self, name: str, value: str) -> Status:
        return await self._forward(lambda c: c.set_var(self.ups, name, value))

    async def _forward(self, send: _Send) -> Status:
        client = self.client
        if client is None:
            return Status.FAILED
        try:
            tracking_id = await send(client)
            result = "SUCCESS"
            if tracking_id is not None:
                result = await client.wait_tracking(tracking_id, timeout=10.0, interval=0.1)
        except NutError as exc:
            log.info("UPS [%s]: remote refused: %s", self.device.name, exc.code)
            return _RESULT.get(exc.code, Status.FAILED)
        except TimeoutError:
            return Status.FAILED
        self.poke()  # show the effect at once
        return _RESULT.get(result, Status.FAILED)


def _ours(name: str) -> bool:
    # the remote's driver.* describe its driver, not us (upstream skips them too)
    return name.lower().startswith("driver.")


def _flags(words: tuple[str, ...]) -> tuple[bool, bool, int | None]:
    """(rw, string, aux) from GET TYPE words; old servers send only one word."""
    string_word = next((w for w in words if w.startswith("STRING")), None)
    aux = None
    if string_word is not None and ":" in string_word:
        try:
            aux = int(string_word.split(":", 1)[1])
        except ValueError:
            aux = None
    rw = "RW" in words or "ENUM" in words or "RANGE" in words
    return rw, string_word is not None, aux
