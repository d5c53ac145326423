"""powerman-pdu: the plugs of PDUs managed by LLNL powerman, through powermand.

``driver = powerman-pdu`` with ``port = host[:port]`` (powermand's client port,
10101 by default; IPv6 as ``[addr]:port``). Like NUT's driver, every node
powermand knows becomes ``outlet.N`` (1-based, in ``nodes`` order) with ``id``,
``desc`` (the node name), ``status`` (on/off/unknown) and ``switchable``, plus
the commands ``outlet.N.load.on|off|cycle``; the device is ``device.type pdu``
from mfr "Powerman", model "unknown PDU". There is no ``ups.status``.

The protocol (request lines, reply framing and parsing, hostlists, the address)
is in :mod:`.protocol`; this module holds the connection (:class:`PowermanClient`)
and the driver. We send ``exprange`` after the greeting so node lists come one
node per line (as libpowerman does).

Differences from NUT's driver, which asks ``status <node>`` once per node: one
``status`` request reads every plug per poll, and requests share one connection
under a lock (a ``cycle`` can take seconds; the poll waits for it). A lost
connection or a silent daemon makes the data stale, and we reconnect by
ourselves with a short backoff so a restarted powermand is back within seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ...state import Device
from ..base import DeviceError, Driver, Status
from .protocol import (
    ACTIONS,
    CP_GREETING,
    CP_HOSTLIST,
    CP_NOSUCHNODES,
    EXPRANGE,
    GOODBYE_MAX,
    MAX_REPLY,
    NODES,
    PROMPT,
    QUIT,
    STATUS,
    PowermanError,
    Reply,
    action_request,
    encode_request,
    expansion_on,
    parse_address,
    parse_nodes,
    parse_outlet_cmd,
    parse_reply,
    parse_status,
)

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 5.0
_QUERY_TIMEOUT = 10.0
# on/off/cycle wait for the PDU itself; powermand's device scripts time out before this
_COMMAND_TIMEOUT = 60.0


class PowermanClient:
    """One connection to powermand; requests are serialised by a lock."""

    def __init__(self, host: str, port: int, timeout: float = _QUERY_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout  # for greetings and queries; actions wait longer
        self.version = ""
        self.expanded = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        timeout = min(self.timeout, _CONNECT_TIMEOUT)
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_REPLY), timeout)
            hello = parse_reply(await self._read(timeout))
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise DeviceError(f"powermand {self.host}:{self.port}: {exc or type(exc).__name__}") from exc
        except DeviceError:
            await self.close()
            raise
        if hello.code != CP_GREETING:
            await self.close()
            raise PowermanError(hello.code, f"unexpected greeting {hello.text!r}")
        self.version = hello.text
        # a toggle: on a fresh connection it turns expansion on; a server without
        # it (201) still works, with compressed lists
        try:
            reply = await self.request(EXPRANGE)
        except DeviceError:
            await self.close()
            raise
        self.expanded = expansion_on(reply)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass

    async def request(self, line: str, timeout: float | None = None) -> Reply:
        """Send one request and read its whole reply (up to the prompt)."""
        out = encode_request(line)
        async with self._lock:
            writer = self._writer
            if writer is None:
                raise DeviceError("powermand: not connected")
            try:
                writer.write(out)
                await writer.drain()
                data = await self._read(self.timeout if timeout is None else timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError) as exc:
                # the rest of a late reply would answer the next request: start over
                await self.close()
                raise DeviceError(f"powermand: {line!r}: {exc or type(exc).__name__}") from exc
        return parse_reply(data)

    async def _read(self, timeout: float) -> bytes:
        assert self._reader is not None
        return await asyncio.wait_for(self._reader.readuntil(PROMPT), timeout)

    async def nodes(self) -> list[str]:
        reply = await self.request(NODES)
        if not reply.ok:
            raise PowermanError(reply.code, reply.text)
        try:
            return parse_nodes(reply)
        except ValueError as exc:
            raise PowermanError(0, str(exc)) from exc

    async def status(self) -> dict[str, str]:
        reply = await self.request(STATUS)
        if not reply.ok:
            raise PowermanError(reply.code, reply.text)
        try:
            return parse_status(reply)
        except ValueError as exc:
            raise PowermanError(0, str(exc)) from exc

    async def action(self, action: str, node: str) -> Reply:
        return await self.request(action_request(action, node),
                                  timeout=max(self.timeout, _COMMAND_TIMEOUT))

    async def quit(self) -> None:
        """Say goodbye (best effort), then close."""
        writer, reader = self._writer, self._reader
        if writer is not None and reader is not None and not self._lock.locked():
            try:
                writer.write(encode_request(QUIT))
                await asyncio.wait_for(writer.drain(), 1.0)
                await asyncio.wait_for(_until_eof(reader, GOODBYE_MAX), 1.0)
            except (OSError, TimeoutError):
                pass
        await self.close()


async def _until_eof(reader: asyncio.StreamReader, most: int) -> None:
    """Read and drop input until EOF, or until ``most`` bytes came without one."""
    while most > 0:
        data = await reader.read(most)
        if not data:
            return
        most -= len(data)


class PowermanPDU(Driver):
    names = ("powerman-pdu",)
    options = frozenset({"synchronous"})
    version = "0.12"  # NUT's driver version this one matches

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        self.host, self.port = parse_address(self.config.get("port", ""))
        # a restarted powermand should be back within seconds
        self.retry_min = 0.5
        self.retry_max = max(2.0, self.pollinterval)
        self.client: PowermanClient | None = None
        self.nodes: list[str] = []
        self._published = False

    async def connect(self) -> None:
        client = PowermanClient(self.host, self.port)
        await client.connect()
        try:
            nodes = await client.nodes()
        except DeviceError:
            await client.close()
            raise
        if not nodes:
            await client.close()
            raise DeviceError(f"powermand {self.host}:{self.port} knows no nodes")
        if len(set(nodes)) != len(nodes):
            log.warning("UPS [%s]: powermand lists some nodes twice", self.device.name)
        self.client = client
        self._publish(nodes)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.quit()

    async def update(self) -> None:
        client = self.client
        if client is None:
            raise DeviceError("not connected")
        states = await client.status()
        dev = self.device
        with dev.batch():
            for n, node in enumerate(self.nodes, 1):
                dev.set(f"outlet.{n}.status", states.get(node, "unknown"))

    def _publish(self, nodes: list[str]) -> None:
        """The static part: device identity and one outlet per node."""
        dev = self.device
        with dev.batch():
            if not self._published:
                self.publish_driver_info()
                self.publish_core_extras()
                dev.set("driver.parameter.pollinterval", self.config.get("pollinterval") or "2")
                dev.set("driver.parameter.synchronous", self.config.get("synchronous", "auto"))
                for var, value in (("device.mfr", "Powerman"), ("device.model", "unknown PDU"),
                                   ("device.type", "pdu"), ("ups.mfr", "Powerman"),
                                   ("ups.model", "unknown PDU")):
                    dev.set(var, value)
                self._published = True
            if nodes == self.nodes:
                return
            # powermand was reconfigured: drop outlets that are gone
            for n in range(len(nodes) + 1, len(self.nodes) + 1):
                for leaf in ("id", "desc", "status", "switchable"):
                    dev.delete(f"outlet.{n}.{leaf}")
                for action in ACTIONS:
                    dev.delete_cmd(f"outlet.{n}.load.{action}")
            for n, node in enumerate(nodes, 1):
                dev.set(f"outlet.{n}.id", str(n))
                dev.set(f"outlet.{n}.desc", node)
                dev.set(f"outlet.{n}.switchable", "yes")
                if dev.get(f"outlet.{n}.status") is None or self.nodes[n - 1:n] != [node]:
                    dev.set(f"outlet.{n}.status", "unknown")
                for action in ACTIONS:
                    dev.add_cmd(f"outlet.{n}.load.{action}")
            self.nodes = nodes

    async def instcmd(self, cmd: str, param: str | None) -> Status:
        parsed = parse_outlet_cmd(cmd)
        if parsed is None:
            return Status.UNKNOWN
        n, action = parsed
        if n > len(self.nodes):
            return Status.UNKNOWN
        client = self.client
        if client is None:
            return Status.FAILED
        node = self.nodes[n - 1]
        try:
            reply = await client.action(action, node)
        except DeviceError as exc:
            log.warning("UPS [%s]: %s: %s", self.device.name, cmd, exc)
            self.poke()  # the poll finds the broken connection and reconnects
            return Status.FAILED
        if not reply.ok:
            log.warning("UPS [%s]: %s (%s %s): powermand %d %s", self.device.name, cmd, action,
                        node, reply.code, reply.text)
            return Status.INVALID if reply.code in (CP_NOSUCHNODES, CP_HOSTLIST) else Status.FAILED
        self.poke()  # show the new state at once
        return Status.HANDLED
