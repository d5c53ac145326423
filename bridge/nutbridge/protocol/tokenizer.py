"""NUT's line tokenizer ("parseconf" rules), sans-IO.

Behaviour observed from upstream upsd and documented in docs/architecture.md:

* words split on ASCII whitespace (space, TAB, CR, VT, FF);
* ``"..."`` makes one word (possibly empty); inside it ``\\x`` is a literal ``x``;
* a backslash outside quotes also escapes the next byte (``a\\ b`` is one word);
* ``#`` outside quotes starts a comment up to the end of the line;
* an unescaped ``#`` inside quotes is a parse error: the line is dropped and
  nothing is answered;
* ``=`` is always a word of its own;
* a newline inside quotes does not end the line (it is dropped like any control byte);
* only bytes 0x20-0x7F are kept inside words (CVE-2012-2944 fix; upstream keeps DEL);
* at most 32 words per line and 512 bytes per word; the excess is silently dropped.

The tokenizer never raises on input: it yields :class:`Line` and :class:`ParseError`
events. It holds at most one word and 32 arguments, so memory is bounded whatever
the peer sends.

Cost: upstream steps its state machine once per byte in C. Doing that in Python
is a denial of service (about 1-2 MB/s), so the machine here steps once per
*token*: runs of word bytes (escapes included), of blanks and of comments are
consumed by one regex match or ``bytes.find`` each, and once a line holds its 32
words the rest of it is skipped by a single regex. Python-level work per line is
therefore bounded by upstream's own limits (a few steps per kept word), and
every byte beyond them costs C-speed scanning only. :meth:`Tokenizer.feed_some`
bounds the work of one call by a number of events, so a server can share its
loop fairly between connections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

MAX_ARGS = 32
MAX_WORDLEN = 512

# Bytes the fast path in feed() cannot take: the four special characters and
# anything _add() would drop (outside 0x20-0x7F) other than the separators.
_SLOW_BYTE = re.compile(rb'["#=\\]|[^\t\n\v\f\r\x20-\x7f]').search
# Runs the state machine consumes in one step (C-speed scans).
_BLANKS = re.compile(rb"[ \t\r\v\f]*").match
# An unquoted word's bytes: anything but a separator, newline, '#', '=' or a
# backslash, or a backslash pair (the escaped byte is literal). A lone trailing
# backslash is left for the next feed (WORD_LITERAL).
_WORD_RUN = re.compile(rb"[^ \t\r\v\f\n#=\\]*+(?:\\[\x00-\xff][^ \t\r\v\f\n#=\\]*+)*+").match
# Inside quotes: anything but '"', '#' or a backslash, or a backslash pair.
_QUOTED_RUN = re.compile(rb'[^"#\\]*+(?:\\[\x00-\xff][^"#\\]*+)*+').match
# re.split keeps the escaped byte (the group) and drops its backslash; joined in C
# (re.sub with a template runs Python code per match on 3.11).
_UNESCAPE = re.compile(rb"\\([\x00-\xff])").split
# Everything _add() drops: control bytes and 8-bit bytes (DEL is kept, as upstream).
_WINDOW = 4096  # bytes of a run copied at a time
_DROPPED = bytes(range(0x20)) + bytes(range(0x80, 0x100))
# With 32 words held, the rest of a line only decides where the line ends: skip
# blanks, '=', complete quoted words and bare words in one match. It stops at a
# newline, a comment, a quote that is not closed in this chunk (or holds '#'), or
# before a bare word that the chunk cuts (the WORD step takes that one, so a
# following '"' stays literal). Possessive and without groups: no per-token memory.
_SKIP = re.compile(
    rb'(?:[ \t\r\v\f=]++'
    rb'|"[^"#\\]*+(?:\\[\x00-\xff][^"#\\]*+)*+"'
    rb'|(?:[^ \t\r\v\f\n"#=\\]|\\[\x00-\xff])[^ \t\r\v\f\n#=\\]*+'
    rb'(?:\\[\x00-\xff][^ \t\r\v\f\n#=\\]*+)*+(?=[ \t\r\v\f\n#=])'
    rb')*+'
).match

# Complete lines of bare words, '=' and quoted words without '#' inside: nearly
# all that clients send, and most garbage. Their words come from one C-level
# split or findall per line instead of the machine; escapes are resolved and
# bytes that _add() drops removed per word (re.split + join, bytes.translate).
_SIMPLE_LINE = (rb'(?:[ \t\r\v\f]++|='
                rb'|"[^"#\\]*+(?:\\[\x00-\xff][^"#\\]*+)*+"'
                rb'|(?:[^ \t\r\v\f\n"#=\\]|\\[\x00-\xff])[^ \t\r\v\f\n#=\\]*+'
                rb'(?:\\[\x00-\xff][^ \t\r\v\f\n#=\\]*+)*+)*+\n')
_SIMPLE_LINES = re.compile(rb"(?:" + _SIMPLE_LINE + rb")*+").match
# A quoted word or an escape may hold a newline (it does not end the line): then
# lines are cut by this pattern instead of at every newline.
_SIMPLE_LINE_ITER = re.compile(_SIMPLE_LINE).finditer
_SIMPLE_WORDS = re.compile(
    rb'"([^"\\]*+(?:\\[\x00-\xff][^"\\]*+)*+)"|(=)'
    rb'|((?:[^ \t\r\v\f"=\\]|\\[\x00-\xff])[^ \t\r\v\f=\\]*+(?:\\[\x00-\xff][^ \t\r\v\f=\\]*+)*+)'
).findall
_HAS_DROPPED = re.compile(rb"[^\t\n\v\f\r\x20-\x7f]").search


def _unescape(word: bytes) -> bytes:
    """Resolve the backslash pairs of a word that _SIMPLE_WORDS matched (so its
    backslashes pair up left to right, as bytes.replace scans)."""
    if b"\x00" in word:
        return b"".join(_UNESCAPE(word))
    # escaped backslashes parked on NUL (dropped later anyway), lone escape bytes removed
    return word.replace(b"\\\\", b"\x00").replace(b"\\", b"").replace(b"\x00", b"\\")


def _end(m: re.Match[bytes] | None) -> int:
    """End of a match of one of the patterns above (they all match, possibly empty)."""
    assert m is not None
    return m.end()


class _S(IntEnum):
    START = 0  # between words
    WORD = 1  # collecting an unquoted word
    WORD_LITERAL = 2  # after a backslash in an unquoted word
    QUOTED = 3  # inside "..."
    QUOTED_LITERAL = 4  # after a backslash inside quotes
    COMMENT = 5  # after '#', until newline


@dataclass(frozen=True, slots=True)
class Line:
    """A complete request line split into words (possibly empty)."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParseError:
    """A line that upstream rejects; the server answers nothing for it."""

    message: str


Event = Line | ParseError

_QUOTE_ERROR = ParseError("Unbalanced word due to unescaped # in quotes")


class Tokenizer:
    """Incremental tokenizer: feed bytes, get complete lines and errors back."""

    __slots__ = ("_args", "_in_word", "_state", "_word")

    def __init__(self) -> None:
        self._state = _S.START
        self._word = bytearray()
        self._args: list[str] = []
        self._in_word = False

    def reset(self) -> None:
        self._state = _S.START
        self._word.clear()
        self._args = []
        self._in_word = False

    @property
    def pending(self) -> bool:
        """True when a partial line is buffered."""
        return bool(self._args) or self._in_word or self._state != _S.START

    def _add(self, c: int) -> None:
        # Control bytes and 8-bit bytes are dropped (DEL passes, as upstream),
        # and words are capped.
        if 0x20 <= c <= 0x7F and len(self._word) < MAX_WORDLEN:
            self._word.append(c)

    def _add_run(self, data: bytes, i: int, j: int) -> None:
        """Add the word bytes data[i:j] (escapes resolved, dropped bytes removed),
        a window at a time, so a run of dropped bytes costs no large copy."""
        while i < j:
            room = MAX_WORDLEN - len(self._word)
            if room <= 0:
                return  # a full word: the rest was scanned, nothing is copied
            e = min(j, i + _WINDOW)
            piece = data[i:e]
            if e < j and (len(piece) - len(piece.rstrip(b"\\"))) % 2:
                e += 1  # do not cut a backslash pair
                piece = data[i:e]
            if b"\\" in piece:
                piece = _unescape(piece)
            self._word += piece.translate(None, _DROPPED)[:room]
            i = e

    def _end_word(self) -> None:
        if len(self._args) < MAX_ARGS:
            self._args.append(self._word.decode("ascii"))
        self._word.clear()
        self._in_word = False

    def _end_line(self) -> Line:
        line = Line(tuple(self._args))
        self._args = []
        self._state = _S.START
        return line

    @staticmethod
    def _plain(text: str, max_events: int) -> tuple[list[Event], int]:
        """Whole lines of plain words (no special or dropped byte), at most ``max_events``;
        characters consumed. str.split() splits on exactly the ASCII blanks such text holds."""
        lines = text.split("\n", max_events)
        rest = lines.pop()
        out: list[Event] = []
        for raw in lines:
            words = raw.split()
            if len(words) > MAX_ARGS:
                del words[MAX_ARGS:]
            if len(raw) > MAX_WORDLEN:
                words = [w[:MAX_WORDLEN] for w in words]
            out.append(Line(tuple(words)))
        return out, len(text) - len(rest)

    @classmethod
    def _simple(cls, region: bytes, max_events: int) -> tuple[list[Event], int]:
        """Lines of a _SIMPLE_LINES region, at most ``max_events``; bytes consumed."""
        escapes = b"\\" in region
        if not escapes and b'"' not in region and b"=" not in region and _HAS_DROPPED(region) is None:
            return cls._plain(region.decode("ascii"), max_events)
        if escapes or b'"' in region:
            lines = []
            end = 0
            for m in _SIMPLE_LINE_ITER(region):
                lines.append(m.group()[:-1])
                end = m.end()
                if len(lines) >= max_events:
                    break
            rest = region[end:]
        else:
            lines = region.split(b"\n", max_events)
            rest = lines.pop()
        out: list[Event] = []
        clean = _HAS_DROPPED(region) is None
        for raw in lines:
            if escapes or b'"' in raw or b"=" in raw:
                # blanks inside quotes are control bytes too: always filtered here
                parts = [q or eq or w for q, eq, w in _SIMPLE_WORDS(raw)]
                if len(parts) > MAX_ARGS:
                    del parts[MAX_ARGS:]
                if escapes:
                    parts = [_unescape(w) if b"\\" in w else w for w in parts]
                words = [w.translate(None, _DROPPED).decode("ascii") for w in parts]
            else:
                parts = raw.split()  # bytes.split(): exactly the ASCII blanks
                if len(parts) > MAX_ARGS:
                    del parts[MAX_ARGS:]
                if clean:
                    words = [w.decode("ascii") for w in parts]
                else:
                    words = [w.translate(None, _DROPPED).decode("ascii") for w in parts]
            if len(raw) > MAX_WORDLEN:
                words = [w[:MAX_WORDLEN] for w in words]
            out.append(Line(tuple(words)))
        return out, len(region) - len(rest)

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data`` and return the events it completes, in order."""
        return self.feed_some(data, len(data) + 1)[0]

    def feed_some(self, data: bytes, max_events: int) -> tuple[list[Event], int]:
        """Consume ``data`` up to the ``max_events``-th event (at least one byte when
        there is data); return the events and how many bytes were consumed."""
        n = len(data)
        if (self._state is _S.START and not self._args and not self._in_word
                and data[-1:] == b"\n" and _SLOW_BYTE(data) is None):
            # Fast path: whole lines of plain words (what clients send)
            return self._plain(data.decode("ascii"), max_events)
        events: list[Event] = []
        state = self._state
        i = 0
        while i < n:
            if state is _S.START:
                if not self._args and not self._in_word:  # at a line start
                    e = _end(_SIMPLE_LINES(data, i))
                    if e > i:
                        out, used = self._simple(data[i:e], max_events - len(events))
                        events += out
                        i += used
                        if len(events) >= max_events:
                            break
                        continue
                if len(self._args) >= MAX_ARGS:
                    i = _end(_SKIP(data, i))
                    if i >= n:
                        break
                else:
                    i = _end(_BLANKS(data, i))
                    if i >= n:
                        break
                c = data[i]
                if c == 0x0A:
                    events.append(self._end_line())
                    i += 1
                    if len(events) >= max_events:
                        break
                elif c == 0x23:  # '#'
                    state = _S.COMMENT
                    i += 1
                elif c == 0x22:  # '"'
                    self._in_word = True
                    state = _S.QUOTED
                    i += 1
                elif c == 0x3D:  # '='
                    self._word.append(c)
                    self._end_word()
                    i += 1
                else:  # a word starts here (a backslash or a dropped byte included)
                    self._in_word = True
                    state = _S.WORD
            elif state is _S.WORD or state is _S.QUOTED:
                # the word's bytes in one scan, then the byte that stopped it
                j = _end((_WORD_RUN if state is _S.WORD else _QUOTED_RUN)(data, i))
                if j > i:
                    self._add_run(data, i, j)
                    i = j
                    if i >= n:
                        break
                c = data[i]
                i += 1
                if c == 0x5C:  # a lone backslash at the end of the data
                    state = _S.WORD_LITERAL if state is _S.WORD else _S.QUOTED_LITERAL
                elif state is _S.QUOTED:
                    if c == 0x22:
                        self._end_word()
                        state = _S.START
                    else:  # '#'
                        self._word.clear()
                        self._args = []
                        self._in_word = False
                        state = _S.START
                        events.append(_QUOTE_ERROR)
                        if len(events) >= max_events:
                            break
                elif c == 0x0A:
                    self._end_word()
                    events.append(self._end_line())
                    state = _S.START
                    if len(events) >= max_events:
                        break
                elif c == 0x23:
                    self._end_word()
                    state = _S.COMMENT
                elif c == 0x3D:
                    self._end_word()
                    self._word.append(c)
                    self._end_word()
                    state = _S.START
                else:  # blank
                    self._end_word()
                    state = _S.START
            elif state is _S.QUOTED_LITERAL or state is _S.WORD_LITERAL:
                self._add(data[i])
                i += 1
                state = _S.QUOTED if state is _S.QUOTED_LITERAL else _S.WORD
            else:  # COMMENT
                j = data.find(b"\n", i)
                if j < 0:
                    i = n
                    break
                i = j + 1
                if self._in_word:
                    self._end_word()
                events.append(self._end_line())
                state = _S.START
                if len(events) >= max_events:
                    break
        self._state = state
        return events, i


def split_line(text: str) -> tuple[str, ...]:
    """Tokenize one complete line (convenience for clients and config readers).

    A trailing newline is added when missing. Raises ValueError on a parse error.
    """
    data = text.encode("latin-1", "replace")
    if not data.endswith(b"\n"):
        data += b"\n"
    tok = Tokenizer()
    for ev in tok.feed(data):
        if isinstance(ev, ParseError):
            raise ValueError(ev.message)
        return ev.words
    raise ValueError("unterminated quote")
