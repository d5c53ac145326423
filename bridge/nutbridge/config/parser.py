"""Read NUT configuration files into (line number, words) entries.

NUT parses its files with the same rules as the network protocol (quotes,
backslash escapes, ``#`` comments, ``=`` as a word of its own), so the sans-IO
tokenizer is reused. Errors carry ``file:line`` so the CLI can print them and
exit with code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..protocol.tokenizer import Line, ParseError, Tokenizer

# The words NUT's config files accept for a boolean.
BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}


class ConfigError(Exception):
    """A configuration problem, reported as ``file:line: message``."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        where = ""
        if self.path:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(where + message)


@dataclass(frozen=True, slots=True)
class Entry:
    line: int
    words: tuple[str, ...]

    def error(self, path: Path | str, message: str) -> ConfigError:
        return ConfigError(message, path, self.line)


def parse_text(text: str, path: Path | str = "<string>") -> list[Entry]:
    tok = Tokenizer()
    entries: list[Entry] = []
    start = 1
    for n, raw in enumerate(text.split("\n"), start=1):
        if not tok.pending:
            start = n
        data = raw.encode("utf-8", "replace") + b"\n"
        for ev in tok.feed(data):
            if isinstance(ev, ParseError):
                raise ConfigError(ev.message.replace("Unbalanced word", "unbalanced quotes"), path, n)
            assert isinstance(ev, Line)
            if ev.words:
                entries.append(Entry(start, ev.words))
            start = n + 1
    if tok.pending:
        raise ConfigError("unterminated quoted string", path, start)
    return entries


def read_entries(path: Path) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError("file not found", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
    return parse_text(text, path)
