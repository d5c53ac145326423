"""powermand's client protocol (powerman's ``client_proto.h``), sans-IO.

Line-based: requests end in CRLF, every answer is ``NNN text`` lines and ends with
the ``powerman> `` prompt (no newline), so a reply is framed by the prompt, never
read line by line (:data:`PROMPT`, at most :data:`MAX_REPLY` bytes). 1xx ends a
successful request, 2xx a failed one, 3xx lines carry data. The greeting is ``001
<version>``. ``exprange`` toggles hostlist expansion (libpowerman turns it on so
node lists come one node per line); a server that refuses it sends compressed
hostlists (``t[0-2,4-15]``), expanded here with a bound on the names one reply may
produce (:data:`MAX_NODES`).

Nothing here touches a socket: request lines out as bytes, replies in as bytes,
typed values out (:class:`Reply`, node lists, plug states), so every parser is
tested directly (tests/test_powerman.py) and :mod:`.driver` only does the I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..base import ConfigError, DeviceError

DEFAULT_PORT = 10101
PROMPT = b"powerman> "
#: Longest reply (up to the prompt) read from powermand; the reader never buffers much more.
#: A status line per node is ~20 bytes, so this is room for tens of thousands of plugs.
MAX_REPLY = 1 << 20
#: Most node names one reply may expand to: powerman's biggest clusters have a few thousand
#: nodes, and a thousand ``nX[0-99999]`` ranges must not cost a hundred million strings.
MAX_NODES = 100_000
#: "101 Goodbye" (and a prompt) is all a quitting powermand still sends: read no more
GOODBYE_MAX = 4096

# client_proto.h codes we act on
CP_GREETING = 1
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

# ---- requests ---------------------------------------------------------------------------

NODES = "nodes"
STATUS = "status"
EXPRANGE = "exprange"
QUIT = "quit"
ACTIONS = ("on", "off", "cycle")
_OUTLET_CMD = re.compile(r"^outlet\.([1-9][0-9]*)\.load\.(on|off|cycle)$")


def encode_request(line: str) -> bytes:
    """One request on the wire (CRLF-terminated). Raises ValueError on a line break inside,
    which would smuggle a second request whose reply would answer the next one."""
    if "\n" in line or "\r" in line:
        raise ValueError("one request line only")
    return line.encode() + b"\r\n"


def action_request(action: str, node: str) -> str:
    """``on|off|cycle <node>``; ValueError for another action or a node name that is empty
    or holds whitespace (powermand would read it as a second argument)."""
    if action not in ACTIONS or not node or any(c.isspace() for c in node):
        raise ValueError(f"bad action {action!r} {node!r}")
    return f"{action} {node}"


def parse_outlet_cmd(cmd: str) -> tuple[int, str] | None:
    """``outlet.N.load.on|off|cycle`` (any case) -> (N, action); None for anything else."""
    m = _OUTLET_CMD.match(cmd.lower())
    return None if m is None else (int(m.group(1)), m.group(2))


# ---- replies ----------------------------------------------------------------------------


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


def expansion_on(reply: Reply) -> bool:
    """Whether an ``exprange`` reply turned expansion on (``105 ... ON``); a server without
    the request (201) still works, with compressed lists."""
    return reply.code == CP_EXPRANGE and reply.text.rstrip().endswith("ON")


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


_STATES = {"on": "on", "off": "off"}  # anything else powermand says is "unknown"


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


# ---- configuration --------------------------------------------------------------------


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
