"""Every answer upsd writes and a client reads, writer and reader side by side (sans-IO).

Each message kind has a *writer* (server side: values in, the exact answer text out,
newline included) next to its *reader* (client side: the answer's words, or its line
where NUT's client looks at the raw text, in; typed values out). ``server/core.py``
writes only through the writers, ``client/core.py`` and ``client/push.py`` read only
through the readers, so this file alone says what each message looks like.

Writers. Values are escaped (``wire.encode``) and quoted where upstream quotes them;
names are written as given (upstream echoes the name the client sent). Every line is
kept within upstream's 512-byte answer buffer (``wire.clip``). DESC and CMDDESC texts
are not escaped: upstream sends its description table verbatim.

Readers raise :class:`MalformedAnswer` for a line that is not the expected message
and :class:`ErrorAnswer` for an ``ERR`` answer where the reader sees one; the client
turns both into its ``NutError`` (``PROTOCOL-ERROR``, resp. the ERR code). Their
tolerance is the one the client library always had: the echoed query and a GET
answer's keyword are matched case-insensitively, words past the expected ones are
ignored, and push lines are read as leniently as before (see ``parse_push``).
ERR codes the :class:`Err` vocabulary knows are returned as ``Err``; any other code
is kept as the text the server sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import Err
from .tokenizer import split_line
from .wire import MAX_ANSWER, clip, encode

Words = Sequence[str]


# ---- reader errors -------------------------------------------------------------------


class AnswerError(Exception):
    """An answer that is not what the reader expects. ``answer`` is what was read."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


class MalformedAnswer(AnswerError):
    """Not the expected message (the client's ``PROTOCOL-ERROR``)."""


class ErrorAnswer(AnswerError):
    """An ``ERR <code> [extra]`` answer."""

    def __init__(self, answer: str, code: Err | str, extra: str = "") -> None:
        super().__init__(answer)
        self.code = code
        self.extra = extra


def _malformed(words: Words) -> MalformedAnswer:
    return MalformedAnswer(" ".join(words))


def split(line: str) -> tuple[str, ...]:
    """An answer line's words, with the protocol's quoting and escaping."""
    try:
        return split_line(line)
    except ValueError as exc:
        raise MalformedAnswer(line) from exc


def _expect(words: Words, keyword: str, count: int) -> None:
    if len(words) < count or words[0].upper() != keyword:
        raise _malformed(words)


def echoes(words: Words, query: Words) -> bool:
    """``words`` start with the ``query`` words, compared case-insensitively."""
    return len(words) >= len(query) and all(
        a.lower() == q.lower() for a, q in zip(words, query, strict=False)
    )


# ---- ERR -------------------------------------------------------------------------------
# ERR <code>[ <extra>]

_ERR_LINES = {e: f"ERR {e.value}\n" for e in Err}
_ERR_CODES: dict[str, Err] = {e.value: e for e in Err}


def err(code: Err, extra: str = "") -> str:
    return code.line(extra) if extra else _ERR_LINES[code]


def err_code(text: str) -> Err | str:
    """The :class:`Err` named by ``text``; an unknown code stays text."""
    return _ERR_CODES.get(text, text)


@dataclass(frozen=True, slots=True)
class ErrReply:
    code: Err | str
    extra: str = ""


def parse_err(line: str) -> ErrReply | None:
    """The ERR of an answer line, None when it is not one.

    Read from the raw line as NUT's client does: any line starting with ``ERR`` is an
    error; the code is the text up to the next space, ``extra`` the rest, verbatim.
    """
    if not line.startswith("ERR"):
        return None
    parts = line.split(" ", 2)
    return ErrReply(err_code(parts[1]) if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")


def check_err(line: str) -> None:
    """Raise :class:`ErrorAnswer` for an ERR answer line."""
    reply = parse_err(line)
    if reply is not None:
        raise ErrorAnswer(line, reply.code, reply.extra)


# ---- OK answers ------------------------------------------------------------------------

OK = "OK\n"  # USERNAME, PASSWORD, LOGIN, SET TRACKING; SET VAR and INSTCMD without tracking
OK_GOODBYE = "OK Goodbye\n"  # LOGOUT
OK_STARTTLS = "OK STARTTLS\n"  # STARTTLS: the TLS handshake follows
OK_FSD_SET = "OK FSD-SET\n"  # FSD
OK_SUBSCRIBED = "OK SUBSCRIBED\n"  # SUBSCRIBE (push extension): batches follow


def granted(word: str) -> str:
    """``OK PRIMARY-GRANTED`` / ``OK MASTER-GRANTED``."""
    return f"OK {word}-GRANTED\n"


def parse_starttls(line: str) -> bool:
    """True when the server agreed to STARTTLS."""
    return line == OK_STARTTLS[:-1]


def ok(tracking_id: str | None = None) -> str:
    """The answer to an accepted SET VAR or INSTCMD: ``OK TRACKING <id>`` with tracking on."""
    return f"OK TRACKING {tracking_id}\n" if tracking_id else OK


def parse_ok(line: str) -> str | None:
    """The tracking id of an ``OK TRACKING <id>`` answer, None for another ``OK``."""
    words = line.split()
    if len(words) == 3 and words[:2] == ["OK", "TRACKING"]:
        return words[2]
    if not line.startswith("OK"):
        raise MalformedAnswer(line)
    return None


# ---- TRACKING --------------------------------------------------------------------------
# GET TRACKING -> ON | OFF;  GET TRACKING <id> -> PENDING | SUCCESS | ERR <code>


def tracking_flag(on: bool) -> str:
    return "ON\n" if on else "OFF\n"


def parse_tracking_flag(line: str) -> bool:
    if line not in ("ON", "OFF"):
        raise MalformedAnswer(line)
    return line == "ON"


PENDING = "PENDING"
SUCCESS = "SUCCESS"
# Driver result codes (upstream STAT_INSTCMD_* / STAT_SET_*) -> GET TRACKING <id> answers.
_TRACKING_RESULTS = {
    -1: PENDING + "\n",
    0: SUCCESS + "\n",
    1: err(Err.UNKNOWN),
    2: err(Err.INVALID_ARGUMENT),
    3: err(Err.FAILED),
    4: err(Err.INVALID_ARGUMENT),
}


def tracking_result(status: int | None) -> str:
    """The answer for a driver result code; None (an unknown or expired id) is UNKNOWN."""
    if status is None:
        return _ERR_LINES[Err.UNKNOWN]
    return _TRACKING_RESULTS.get(status, _ERR_LINES[Err.UNKNOWN])


def parse_tracking_result(line: str) -> str:
    """``PENDING`` or ``SUCCESS`` (another word is returned as sent); ERR raises."""
    check_err(line)
    return line


# ---- GET answers -----------------------------------------------------------------------


def reply_tail(words: Words, query: Words) -> tuple[str, ...]:
    """The words after the echoed query of a GET answer (at least one)."""
    if len(words) <= len(query) or not echoes(words, query):
        raise _malformed(words)
    return tuple(words[len(query):])


# VAR <ups> <var> "<value>"  (GET VAR, LIST VAR items, push batches)
def var(ups: str, name: str, value: str) -> str:
    return clip(f'VAR {ups} {name} "{encode(value)}"\n')


def parse_var(words: Words) -> tuple[str, str, str]:
    """(ups, variable, value)."""
    _expect(words, "VAR", 4)
    return words[1], words[2], words[3]


# TYPE <ups> <var> <type>...  (RW, ENUM, RANGE, STRING:<n>, NUMBER)
def vartype(ups: str, name: str, types: Iterable[str]) -> str:
    return clip(f"TYPE {ups} {name} {' '.join(types)}\n")


def parse_vartype(words: Words) -> tuple[str, str, tuple[str, ...]]:
    """(ups, variable, type words)."""
    _expect(words, "TYPE", 4)
    return words[1], words[2], tuple(words[3:])


# DESC <ups> <var> "<text>"  and  CMDDESC <ups> <cmd> "<text>"  (text not escaped)
def desc(ups: str, name: str, text: str) -> str:
    return clip(f'DESC {ups} {name} "{text}"\n')


def parse_desc(words: Words) -> tuple[str, str, str]:
    """(ups, variable, description)."""
    _expect(words, "DESC", 4)
    return words[1], words[2], words[3]


def cmddesc(ups: str, name: str, text: str) -> str:
    return clip(f'CMDDESC {ups} {name} "{text}"\n')


def parse_cmddesc(words: Words) -> tuple[str, str, str]:
    """(ups, command, description)."""
    _expect(words, "CMDDESC", 4)
    return words[1], words[2], words[3]


# UPSDESC <ups> "<desc>"
def upsdesc(ups: str, text: str) -> str:
    return clip(f'UPSDESC {ups} "{encode(text)}"\n')


def parse_upsdesc(words: Words) -> tuple[str, str]:
    """(ups, description)."""
    _expect(words, "UPSDESC", 3)
    return words[1], words[2]


# NUMLOGINS <ups> <n>
def numlogins(ups: str, count: int) -> str:
    return clip(f"NUMLOGINS {ups} {count}\n")


def parse_numlogins(words: Words) -> tuple[str, int]:
    """(ups, number of clients logged into it)."""
    _expect(words, "NUMLOGINS", 3)
    try:
        return words[1], int(words[2])
    except ValueError:
        raise _malformed(words) from None


# ---- LIST blocks -----------------------------------------------------------------------
# BEGIN LIST <head>
# <head> <value>...        one item per line, <head> = the query words, e.g. VAR <ups>
# END LIST <head>


def list_begin(*head: str) -> str:
    return clip(f"BEGIN LIST {' '.join(head)}\n")


def list_end(*head: str) -> str:
    return clip(f"END LIST {' '.join(head)}\n")


def list_block(head: Sequence[str], items: Iterable[str]) -> str:
    """A whole LIST answer from its head words and item lines."""
    return list_begin(*head) + "".join(items) + list_end(*head)


def parse_list_begin(words: Words, head: Words) -> None:
    """Check the first line of a LIST answer: ``BEGIN LIST`` and the query words."""
    if not echoes(words, ("BEGIN", "LIST", *head)):
        raise _malformed(words)


def is_list_end(words: Words) -> bool:
    """The line that ends a LIST (its head is not checked, as in NUT's client)."""
    return tuple(words[:2]) == ("END", "LIST")


def parse_list_item(words: Words, head: Words) -> tuple[str, ...]:
    """The words of a LIST item after its head (possibly none)."""
    if not echoes(words, head):
        raise _malformed(words)
    return tuple(words[len(head):])


# Items (LIST VAR items are VAR lines, see var()):
def ups_item(ups: str, text: str) -> str:
    """``UPS <ups> "<desc>"`` (LIST UPS)."""
    return clip(f'UPS {ups} "{encode(text)}"\n')


def rw_item(ups: str, name: str, value: str) -> str:
    """``RW <ups> <var> "<value>"`` (LIST RW)."""
    return clip(f'RW {ups} {name} "{encode(value)}"\n')


def cmd_item(ups: str, name: str) -> str:
    """``CMD <ups> <cmd>`` (LIST CMD)."""
    return clip(f"CMD {ups} {name}\n")


def enum_item(ups: str, name: str, value: str) -> str:
    """``ENUM <ups> <var> "<value>"`` (LIST ENUM)."""
    return clip(f'ENUM {ups} {name} "{encode(value)}"\n')


def range_item(ups: str, name: str, low: int | str, high: int | str) -> str:
    """``RANGE <ups> <var> "<min>" "<max>"`` (LIST RANGE)."""
    return clip(f'RANGE {ups} {name} "{low}" "{high}"\n')


def client_item(ups: str, addr: str) -> str:
    """``CLIENT <ups> <address>`` (LIST CLIENT: one per client logged into the UPS)."""
    return clip(f"CLIENT {ups} {addr}\n")


# EVENT <ups>|* "<json>"  (LIST EVENT, bridge extension, docs/events.md)
def event_room(name: str) -> int:
    """Bytes left for the escaped JSON text of an EVENT item of ``name``."""
    return MAX_ANSWER - len(f"EVENT {name}") - 4  # space, two quotes, newline


def event_item(name: str, text: str) -> str:
    return clip(f'EVENT {name} "{encode(text)}"\n')


def parse_event_item(words: Words, name: str) -> dict[str, Any]:
    """The event record of an ``EVENT <name> "<json object>"`` item."""
    if len(words) != 3 or not echoes(words, ("EVENT", name)):
        raise _malformed(words)
    try:
        record = json.loads(words[2])
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise _malformed(words)
    return record


# ---- push extension (SUBSCRIBE, docs/push.md) ------------------------------------------
# OK SUBSCRIBED, then batches:
# BEGIN UPDATE <ups>
# VAR <ups> <var> "<value>"     see var()
# DELVAR <ups> <var>
# STATE <ups> OK|WAIT|DATA-STALE|DRIVER-NOT-CONNECTED
# END UPDATE <ups>


def parse_subscribed(words: Words) -> None:
    """Check the answer to SUBSCRIBE: ``OK SUBSCRIBED``, else ErrorAnswer / MalformedAnswer."""
    if words and words[0] == "ERR":
        raise ErrorAnswer(" ".join(words), err_code(words[1]) if len(words) > 1 else "UNKNOWN")
    if tuple(words[:2]) != ("OK", "SUBSCRIBED"):
        raise _malformed(words)


def update_begin(ups: str) -> str:
    return clip(f"BEGIN UPDATE {ups}\n")


def delvar(ups: str, name: str) -> str:
    return clip(f"DELVAR {ups} {name}\n")


def update_state(ups: str, state: str) -> str:
    return clip(f"STATE {ups} {state}\n")


def update_end(ups: str) -> str:
    return clip(f"END UPDATE {ups}\n")


@dataclass(frozen=True, slots=True)
class UpdateBegin:
    ups: str


@dataclass(frozen=True, slots=True)
class UpdateVar:
    ups: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class UpdateDelvar:
    ups: str
    name: str


@dataclass(frozen=True, slots=True)
class UpdateState:
    ups: str
    state: str


@dataclass(frozen=True, slots=True)
class UpdateEnd:
    ups: str


PushLine = UpdateBegin | UpdateVar | UpdateDelvar | UpdateState | UpdateEnd


def parse_push(words: Words) -> PushLine | None:
    """One line of a push batch; None for a line the client ignores.

    Tolerant as the client always was: keywords are matched exactly, ``BEGIN`` needs a
    name (its second word is not checked), ``END`` ends the batch whatever follows,
    and lines of other kinds or with too few words are skipped.
    """
    n = len(words)
    kind = words[0] if n else ""
    if kind == "VAR" and n >= 4:
        return UpdateVar(words[1], words[2], words[3])
    if kind == "BEGIN" and n >= 3:
        return UpdateBegin(words[2])
    if kind == "DELVAR" and n >= 3:
        return UpdateDelvar(words[1], words[2])
    if kind == "STATE" and n >= 3:
        return UpdateState(words[1], words[2])
    if kind == "END":
        return UpdateEnd(words[2] if n >= 3 else "")
    return None
