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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

MAX_ARGS = 32
MAX_WORDLEN = 512

_SPACE = frozenset(b" \t\r\v\f")
# Bytes the fast path in feed() cannot take: the four special characters and
# anything _add() would drop (outside 0x20-0x7F) other than the separators.
_SLOW_BYTE = re.compile(rb'["#=\\]|[^\t\n\v\f\r\x20-\x7f]').search


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

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data`` and return the events it completes, in order."""
        if (self._state is _S.START and not self._args and not self._in_word
                and data[-1:] == b"\n" and _SLOW_BYTE(data) is None):
            # Fast path: whole lines of plain words (what clients send), with the
            # state machine's result: str.split() splits on exactly the ASCII
            # whitespace _SLOW_BYTE lets through (TAB LF VT FF CR space).
            lines = data.decode("ascii").split("\n")
            lines.pop()
            out: list[Event] = []
            for line in lines:
                words = line.split()
                if len(words) > MAX_ARGS:
                    del words[MAX_ARGS:]
                if len(line) > MAX_WORDLEN:
                    words = [w[:MAX_WORDLEN] for w in words]
                out.append(Line(tuple(words)))
            return out
        events: list[Event] = []
        state = self._state
        for c in data:
            if state == _S.START:
                if c == 0x0A:
                    events.append(self._end_line())
                elif c in _SPACE:
                    pass
                elif c == 0x23:  # '#'
                    state = _S.COMMENT
                elif c == 0x22:  # '"'
                    self._in_word = True
                    state = _S.QUOTED
                elif c == 0x5C:  # '\\'
                    self._in_word = True
                    state = _S.WORD_LITERAL
                elif c == 0x3D:  # '='
                    self._word.append(c)
                    self._end_word()
                else:
                    self._in_word = True
                    self._add(c)
                    state = _S.WORD
            elif state == _S.WORD:
                if c == 0x0A:
                    self._end_word()
                    events.append(self._end_line())
                    state = _S.START
                elif c in _SPACE:
                    self._end_word()
                    state = _S.START
                elif c == 0x23:
                    self._end_word()
                    state = _S.COMMENT
                elif c == 0x5C:
                    state = _S.WORD_LITERAL
                elif c == 0x3D:
                    self._end_word()
                    self._word.append(c)
                    self._end_word()
                    state = _S.START
                else:
                    self._add(c)
            elif state == _S.QUOTED:
                if c == 0x22:
                    self._end_word()
                    state = _S.START
                elif c == 0x5C:
                    state = _S.QUOTED_LITERAL
                elif c == 0x23:
                    self._word.clear()
                    self._args = []
                    self._in_word = False
                    state = _S.START
                    events.append(ParseError("Unbalanced word due to unescaped # in quotes"))
                else:
                    self._add(c)
            elif state == _S.QUOTED_LITERAL:
                self._add(c)
                state = _S.QUOTED
            elif state == _S.WORD_LITERAL:
                self._add(c)
                state = _S.WORD
            else:  # COMMENT
                if c == 0x0A:
                    if self._in_word:
                        self._end_word()
                    events.append(self._end_line())
                    state = _S.START
        self._state = state
        return events


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
