"""Response formatting and parsing helpers shared by server and client (sans-IO)."""

from __future__ import annotations

from .tokenizer import split_line

# Upstream sends every answer through a 512-byte buffer (NUT_NET_ANSWER_MAX).
MAX_ANSWER = 512
# Values are stored escaped in at most 255 bytes (ST_MAX_VALUE_LEN incl. NUL).
MAX_VALUE = 255

_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "#": "\\#"})


def encode(text: str) -> str:
    """Escape ``#``, backslash and double quote as upstream's pconf_encode does."""
    return text.translate(_ESC)


def quote(text: str) -> str:
    return f'"{encode(text)}"'


def arg(text: str) -> str:
    """Format one request argument: quoted when it needs to be, escaped always."""
    if text == "" or any(c in text for c in " \t\r\n=\"\\#"):
        return quote(text)
    return text


def request(*words: str) -> bytes:
    """Build one request line from words (client side)."""
    return (" ".join(arg(w) for w in words) + "\n").encode("ascii", "replace")


def clip(line: str) -> str:
    """Keep an answer within upstream's 512-byte buffer, newline included.

    Upstream silently truncates and loses the newline, which desynchronises the
    client; we keep the newline (a documented difference).
    """
    if len(line) <= MAX_ANSWER:
        return line
    return line[: MAX_ANSWER - 1] + "\n"


def parse_answer(line: str) -> tuple[str, ...]:
    """Split an answer line into words with NUT's quoting rules."""
    return split_line(line)
