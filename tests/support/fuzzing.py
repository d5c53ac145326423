"""Helpers for tests/test_fuzz.py: a reference model of upsd's line parser,
byte strategies, and probes that send one fuzzed request to a live server.

The model is an independent statement of upstream's ``parseconf`` rules as
upsd applies them one byte at a time (``pconf_char``), written from the
behaviour of the C code, not from our tokenizer. It serves two purposes: an
oracle for the tokenizer, and a way to know which state a fuzzed payload
leaves the server's parser in, so a probe can close it and append a sentinel
request instead of waiting for a timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

MAX_ARGS = 32
MAX_WORDLEN = 512
# Upstream's addchar() (CVE-2012-2944 fix) keeps ``0x20 <= ch <= 0x7f``: its comment
# says "Space to ~" but the test is ``ch > 0x7f``, so DEL (0x7F) is kept. Bytes
# >= 0x80 arrive as a negative ``char`` and are dropped.
KEPT_BYTES = range(0x20, 0x80)
SPACES = b" \t\r\v\f"  # isspace() in the C locale, newline aside

# parser states, named after parseconf's
START, COLLECT, COLLECT_LITERAL, QUOTE, QUOTE_LITERAL, EOL = (
    "start", "collect", "collect-literal", "quote", "quote-literal", "find-eol")


@dataclass
class RefParser:
    """Byte-at-a-time model of parseconf as upsd drives it."""

    state: str = START
    word: bytearray = field(default_factory=bytearray)
    args: list[str] = field(default_factory=list)

    def _keep(self, c: int) -> None:
        if c in KEPT_BYTES and len(self.word) < MAX_WORDLEN:
            self.word.append(c)

    def _word_done(self) -> None:
        if len(self.args) < MAX_ARGS:
            self.args.append(self.word.decode("ascii"))
        self.word = bytearray()

    def _line_done(self) -> tuple[str, ...]:
        words, self.args = tuple(self.args), []
        self.state = START
        return words

    def step(self, c: int) -> tuple[str, ...] | str | None:
        """One byte; returns the words of a completed line, "error", or None."""
        s = self.state
        if s == QUOTE:
            if c == ord("#"):
                self.word, self.args, self.state = bytearray(), [], START
                return "error"
            if c == ord('"'):
                self._word_done()
                self.state = START
            elif c == ord("\\"):
                self.state = QUOTE_LITERAL
            else:
                self._keep(c)
            return None
        if s in (QUOTE_LITERAL, COLLECT_LITERAL):
            if c != 0x0A:  # an escaped newline is skipped, the word goes on
                self._keep(c)
            self.state = QUOTE if s == QUOTE_LITERAL else COLLECT
            return None
        if s == EOL:
            return self._line_done() if c == 0x0A else None
        if s == COLLECT:
            if c in SPACES or c in b"#\n=":
                self._word_done()
                self.state = START
                if c == ord("#"):
                    self.state = EOL
                elif c == 0x0A:
                    return self._line_done()
                elif c == ord("="):
                    self.word.append(c)
                    self._word_done()
            elif c == ord("\\"):
                self.state = COLLECT_LITERAL
            else:
                self._keep(c)
            return None
        # START: between words
        if c == 0x0A:
            return self._line_done()
        if c == ord("#"):
            self.state = EOL
        elif c == ord("\\"):
            self.state = COLLECT_LITERAL
        elif c == ord('"'):
            self.state = QUOTE
        elif c in SPACES:
            pass
        else:
            self._keep(c)
            if c == ord("="):
                self._word_done()
            else:
                self.state = COLLECT
        return None


def ref_events(data: bytes, parser: RefParser | None = None) -> list[tuple[str, ...] | str]:
    """Every completed line (a tuple of words) and "error" that ``data`` produces."""
    p = parser or RefParser()
    out: list[tuple[str, ...] | str] = []
    for c in data:
        ev = p.step(c)
        if ev is not None:
            out.append(ev)
    return out


# ---- byte strategies ----------------------------------------------------------

# Everything that matters to the parser, and bytes it must throw away.
SPECIAL_BYTES = [b'"', b"\\", b"#", b"=", b" ", b"\t", b"\r", b"\v", b"\f", b"\x00", b"\x01", b"\x1f",
                 b"\x7f", b"\x80", b"\xa0", b"\xff", b"\xc3\xa9", b"\n"]
KNOWN_WORDS = ["GET", "VAR", "LIST", "dummy", "DUMMY", "ups.status", "ups.mfr", "battery.charge",
               "server.version", "server.info", "ups.temperature", "nope"]


def fragments(newline: bool = True) -> st.SearchStrategy[bytes]:
    specials = [b for b in SPECIAL_BYTES if newline or b != b"\n"]
    return st.one_of(
        st.sampled_from(specials),
        st.sampled_from([w.encode() for w in KNOWN_WORDS]),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=6)
        .map(str.encode),
        st.binary(min_size=1, max_size=4),
    )


def fuzz_bytes(max_parts: int = 12, newline: bool = True) -> st.SearchStrategy[bytes]:
    """Short byte strings rich in quotes, escapes, comments, '=' and dropped bytes."""
    return st.lists(fragments(newline), max_size=max_parts).map(b"".join)


@st.composite
def mangled_name(draw: st.DrawFn, names: Sequence[str]) -> bytes:
    """A real name, changed in ways that may or may not keep it the same word."""
    name = draw(st.sampled_from(list(names)))
    if draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    out = name.encode()
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(out)))
        ins = draw(st.sampled_from([b"\x01", b"\x7f", b"\xff", b"\\", b"\\x", b'"', b"=", b"#", b" ",
                                    b"\x00", b"\r"]))
        out = out[:pos] + ins + out[pos:]
    if draw(st.booleans()):
        out = b'"' + out + (b'"' if draw(st.booleans()) else b"")
    return out


# ---- probing live servers ----------------------------------------------------

@dataclass
class Probe:
    """One fuzzed payload and how to finish it so that a sentinel gets answered."""

    payload: bytes
    tail: bytes  # closes whatever the payload left open
    parse_error: bool  # the server drops the rest of that read: sentinel goes separately


def plan(payload: bytes) -> Probe:
    p = RefParser()
    events = ref_events(payload, p)
    if p.state in (QUOTE, QUOTE_LITERAL):
        tail = b'"\n'
    elif p.state == START:
        tail = b""
    else:
        tail = b"\n"
    if p.state in (QUOTE_LITERAL, COLLECT_LITERAL):
        tail = b"x" + tail
    return Probe(payload, tail, "error" in events)


def read_until(sock: socket.socket, marker: bytes, timeout: float) -> tuple[bytes, bool]:
    """Read until the last line received starts with ``marker``.

    Returns (everything answered before that line, whether it came).
    """
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        if buf.endswith(b"\n"):
            i = buf.rfind(b"\n", 0, len(buf) - 1) + 1  # start of the last line
            if buf.startswith(marker, i):
                return buf[:i], True
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            return buf, False
        if not data:
            return buf, False
        buf += data


def probe_many(ports: Sequence[int], probe: Probe, sentinel: bytes, marker: bytes,
               gap: float = 0.12, timeout: float = 5.0) -> list[tuple[bytes, bool]]:
    """Send one probe on a fresh connection to each port, then the sentinel.

    After a parse error the server throws away the rest of that read, so the
    sentinel then goes in a second write, ``gap`` seconds later. Returns, per
    port, what was answered before the sentinel's answer and whether that came.
    """
    socks = [socket.create_connection(("127.0.0.1", port), timeout=timeout) for port in ports]
    try:
        for s in socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if probe.parse_error:
                s.sendall(probe.payload)
            else:
                s.sendall(probe.payload + probe.tail + sentinel)
        if probe.parse_error:
            time.sleep(gap)
            for s in socks:
                s.sendall(sentinel)
        return [read_until(s, marker, timeout) for s in socks]
    finally:
        for s in socks:
            s.close()
