"""powerman-pdu: the plugs of PDUs managed by LLNL powerman, through powermand.

``driver = powerman-pdu`` with ``port = host[:port]`` (powermand's client port,
10101 by default; IPv6 as ``[addr]:port``). Like NUT's driver, every node
powermand knows becomes ``outlet.N`` (1-based, in ``nodes`` order) with ``id``,
``desc`` (the node name), ``status`` (on/off/unknown) and ``switchable``, plus
the commands ``outlet.N.load.on|off|cycle``; the device is ``device.type pdu``
from mfr "Powerman", model "unknown PDU". There is no ``ups.status``.

The protocol (powerman's ``client_proto.h``): line-based, requests end in
CRLF, every answer is ``NNN text`` lines and ends with the ``powerman> `` prompt
(no newline), so a reply is read up to the prompt, never line by line. 1xx
ends a successful request, 2xx a failed one, 3xx lines carry data. We send
``exprange`` after the greeting so node lists come one node per line (as
libpowerman does); a server that refuses it gets its compressed hostlists
(``t[0-2,4-15]``) expanded here.

Differences from NUT's driver, which asks ``status <node>`` once per node: one
``status`` request reads every plug per poll, and requests share one connection
under a lock (a ``cycle`` can take seconds; the poll waits for it). A lost
connection or a silent daemon makes the data stale, and we reconnect by
ourselves with a short backoff so a restarted powermand is back within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status

log = logging.getLogger(__name__)

DEFAULT_PORT = 10101
PROMPT = b"powerman> "
#: Longest reply (up to the prompt) read from powermand; the reader never buffers much more.
#: A status line per node is ~20 bytes, so this is room for tens of thousands of plugs.
MAX_REPLY = 1 << 20
#: Most node names one reply may expand to: powerman's biggest clusters have a few thousand
#: nodes, and a thousand ``nX[0-99999]`` ranges must not cost a hundred million strings.
MAX_NODES = 100_000
_CONNECT_TIMEOUT = 5.0
_QUERY_TIMEOUT = 10.0
# on/off/cycle wait for the PDU itself; powermand's device scripts time out before this
_COMMAND_TIMEOUT = 60.0
_ACTIONS = ("on", "off", "cycle")
_OUTLET_CMD = re.compile(r"^outlet\.([1-9][0-9]*)\.load\.(on|off|cycle)$")
_STATES = {"on": "on", "off": "off"}  # anything else powermand says is "unknown"

# client_proto.h codes we act on
CP_GOODBYE = 101
CP_EXPRANGE = 105
CP_NOSUCHNODES = 209
CP_HOSTLIST = 205
CP_PARSE = 202
CP_UNKNOWN = 201
CP_INFO_HOSTS = 306
CP_INFO_XHOST = 307
CP_INFO_STATUS = 302
CP_INFO_XSTATUS = 303


class PowermanError(DeviceError):
    """powermand refused a request (a 2xx code) or answered out of protocol."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"powermand: {code} {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Reply:
    """One answer: the informational ``3xx`` lines and the final code."""

    code: int
    text: str
    info: tuple[tuple[int, str], ...]

    @property
    def ok(self) -> bool:
        return 100 <= self.code < 200

    def lines(self, code: int) -> list[str]:
        return [text for c, text in self.info if c == code]


# a reply line ("NNN" or "NNN text"), and the first non-empty line that is not one
_REPLY_LINE = re.compile(r"^(\d{3})(?: (.*))?$", re.M)
_BAD_LINE = re.compile(r"^(?!\d{3}(?: |$)).+$", re.M)


def parse_reply(data: bytes) -> Reply:
    """Split what came before a prompt into 3xx lines and the final 1xx/2xx line.

    Raises :class:`PowermanError` (code 0) when there is no final line. The lines
    are checked and split by regex scans, so garbage costs C time per byte."""
    text = data.removesuffix(PROMPT).decode("utf-8", "replace")
    lines = text.replace("\r", "")
    bad = _BAD_LINE.search(lines)
    if bad:
        raise PowermanError(0, f"unexpected line {bad.group()!r}")
    info: list[tuple[int, str]] = []
    final: tuple[int, str] | None = None
    for code_text, rest in _REPLY_LINE.findall(lines):
        code = int(code_text)
        if 300 <= code < 400:
            info.append((code, rest))
        else:
            final = (code, rest)
    if final is None:
        raise PowermanError(0, f"reply without a result code: {text!r}")
    return Reply(final[0], final[1], tuple(info))


def expand_hostlist(text: str, limit: int = MAX_NODES) -> list[str]:
    """Expand powerman's compressed hostlists: ``t[0-2,4],n[08-10]x,a`` ->
    t0 t1 t2 t4 n08x n09x n10x a. Zero-padded bounds keep their width.

    Raises ValueError on a malformed list, or one of more than ``limit`` names."""
    names: list[str] = []
    for item in _split_top(text.strip()):
        m = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", item)
        if m is None:
            if "[" in item or "]" in item:
                raise ValueError(f"bad hostlist {text!r}")
            if len(names) >= limit:
                raise ValueError(f"hostlist of more than {limit} nodes")
            names.append(item)
            continue
        prefix, ranges, suffix = m.groups()
        for rng in ranges.split(","):
            lo, sep, hi = rng.strip().partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise ValueError(f"bad range {rng!r} in hostlist {text!r}")
            width = len(lo) if len(lo) > 1 and lo.startswith("0") else 0
            first, last = int(lo), int(hi) if sep else int(lo)
            if last < first or last - first > 100_000:
                raise ValueError(f"bad range {rng!r} in hostlist {text!r}")
            if len(names) + last - first >= limit:
                raise ValueError(f"hostlist of more than {limit} nodes")
            names.extend(f"{prefix}{n:0{width}d}{suffix}" for n in range(first, last + 1))
    return names


# brackets paired and not nested; an item runs between commas outside brackets
_BRACKETS_OK = re.compile(r"(?:[^\[\]]|\[[^\[\]]*\])*")
_ITEM = re.compile(r"(?:[^,\[]|\[[^\]]*\])+")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets (regex scans: no Python loop per byte)."""
    if not _BRACKETS_OK.fullmatch(text):
        raise ValueError(f"bad hostlist {text!r}")
    return [i.strip() for i in _ITEM.findall(text) if i.strip()]


def parse_nodes(reply: Reply) -> list[str]:
    """Node names from a ``nodes`` reply, expanded or not (at most :data:`MAX_NODES`)."""
    nodes = [n.strip() for n in reply.lines(CP_INFO_XHOST) if n.strip()]
    for line in reply.lines(CP_INFO_HOSTS):
        nodes.extend(expand_hostlist(line, MAX_NODES - len(nodes)))
    if len(nodes) > MAX_NODES:
        raise ValueError(f"more than {MAX_NODES} nodes")
    return nodes


def parse_status(reply: Reply) -> dict[str, str]:
    """node -> on/off/unknown from a ``status`` reply, expanded (303 ``t0: on``)
    or compressed (302 ``on:      t[0-3]``)."""
    out: dict[str, str] = {}
    for line in reply.lines(CP_INFO_XSTATUS):
        node, sep, state = line.rpartition(":")
        if sep:
            out[node.strip()] = _STATES.get(state.strip(), "unknown")
    budget = MAX_NODES  # names expanded in this reply, duplicates included
    for line in reply.lines(CP_INFO_STATUS):
        state, sep, hosts = line.partition(":")
        if sep:
            nodes = expand_hostlist(hosts, budget)
            budget -= len(nodes)
            out.update(dict.fromkeys(nodes, _STATES.get(state.strip(), "unknown")))
    return out


def parse_address(port: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> (host, port)."""
    text = port.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\s]+)(?::(\d+))?", text)
    if not text or m is None:
        raise ConfigError(f"powerman-pdu: port must be host[:port] (powermand), not '{port}'")
    host = m.group(1) or m.group(3)
    number = int(m.group(2) or m.group(4) or DEFAULT_PORT)
    if not 0 < number < 65536:
        raise ConfigError(f"powerman-pdu: bad TCP port in '{port}'")
    return host, number


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
        if hello.code != 1:  # "001 <version>"
            await self.close()
            raise PowermanError(hello.code, f"unexpected greeting {hello.text!r}")
        self.version = hello.text
        # a toggle: on a fresh connection it turns expansion on; a server without
        # it (201) still works, with compressed lists
        try:
            reply = await self.request("exprange")
        except DeviceError:
            await self.close()
            raise
        self.expanded = reply.code == CP_EXPRANGE and reply.text.rstrip().endswith("ON")

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
        if "\n" in line or "\r" in line:
            raise ValueError("one request line only")
        async with self._lock:
            writer = self._writer
            if writer is None:
                raise DeviceError("powermand: not connected")
            try:
                writer.write(line.encode() + b"\r\n")
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
        reply = await self.request("nodes")
        if not reply.ok:
            raise PowermanError(reply.code, reply.text)
        try:
            return parse_nodes(reply)
        except ValueError as exc:
            raise PowermanError(0, str(exc)) from exc

    async def status(self) -> dict[str, str]:
        reply = await self.request("status")
        if not reply.ok:
            raise PowermanError(reply.code, reply.text)
        try:
            return parse_status(reply)
        except ValueError as exc:
            raise PowermanError(0, str(exc)) from exc

    async def action(self, action: str, node: str) -> Reply:
        if action not in _ACTIONS or not node or any(c.isspace() for c in node):
            raise ValueError(f"bad action {action!r} {node!r}")
        return await self.request(f"{action} {node}", timeout=max(self.timeout, _COMMAND_TIMEOUT))

    async def quit(self) -> None:
        """Say goodbye (best effort), then close."""
        writer, reader = self._writer, self._reader
        if writer is not None and reader is not None and not self._lock.locked():
            try:
                writer.write(b"quit\r\n")
                await asyncio.wait_for(writer.drain(), 1.0)
                await asyncio.wait_for(_until_eof(reader, _GOODBYE_MAX), 1.0)
            except (OSError, TimeoutError):
                pass
        await self.close()


# "101 Goodbye" (and a prompt) is all a quitting powermand still sends: read no more
_GOODBYE_MAX = 4096


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
                for action in _ACTIONS:
                    dev.delete_cmd(f"outlet.{n}.load.{action}")
            for n, node in enumerate(nodes, 1):
                dev.set(f"outlet.{n}.id", str(n))
                dev.set(f"outlet.{n}.desc", node)
                dev.set(f"outlet.{n}.switchable", "yes")
                if dev.get(f"outlet.{n}.status") is None or self.nodes[n - 1:n] != [node]:
                    dev.set(f"outlet.{n}.status", "unknown")
                for action in _ACTIONS:
                    dev.add_cmd(f"outlet.{n}.load.{action}")
            self.nodes = nodes

    async def instcmd(self, cmd: str, param: str | None) -> Status:
        m = _OUTLET_CMD.match(cmd.lower())
        if m is None:
            return Status.UNKNOWN
        n, action = int(m.group(1)), m.group(2)
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
