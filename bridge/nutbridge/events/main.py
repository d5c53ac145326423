"""``nutbridge events``: list the event history from the state directory's files.

Reads ``events.jsonl.1`` and ``events.jsonl`` directly, so it works whether the
bridge runs or not (and needs no credentials: file access is the permission).
Other histories in the same directory (``<name>-events.jsonl``, e.g. a separate
``nutbridge monitor``'s) are merged in by time.
Exit codes: 0 listed (possibly nothing), 1 error (message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from ..config.parser import ConfigError
from ..config.upsd_conf import parse_upsd_conf
from ..history import KINDS, NAME, Event, Loaded, parse_ts, read_file, ups_matches
from ..statedir import _candidates

DEFAULT_COUNT = 50


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nutbridge events",
        description="List the bridge's event history: power events, driver availability, "
        "commands and settings with who ran them, monitor notifications and shutdown steps, "
        "bridge starts and stops. Oldest first; times in local time.",
    )
    p.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                   help="the bridge's state directory (default: where `nutbridge serve` with the "
                   "same configuration keeps it, see docs/discovery.md)")
    p.add_argument("-c", "--config-dir", type=Path, default=None,
                   help="the configuration directory of the bridge whose history to read "
                   "(default: $NUT_CONFPATH, else /etc/nut's bridge)")
    p.add_argument("-n", dest="count", type=int, default=DEFAULT_COUNT, metavar="N",
                   help=f"show the last N matching events (default {DEFAULT_COUNT}; 0: all)")
    p.add_argument("--ups", metavar="NAME", help="only this UPS")
    p.add_argument("--kind", action="append", default=[], metavar="KIND",
                   help=f"only these kinds (repeatable or comma-separated): {', '.join(KINDS)}")
    p.add_argument("--since", metavar="TIME",
                   help="only events at or after TIME (ISO 8601, e.g. 2026-05-01 or "
                   "2026-05-01T12:00; local time unless it has an offset or Z)")
    p.add_argument("--json", action="store_true", help="print the records as stored (JSON lines)")
    return p


def _fail(msg: str) -> int:
    sys.stderr.write(f"nutbridge events: {msg}\n")
    return 1


def _histories(d: Path) -> list[Path]:
    """The live file of every history in ``d`` (``events.jsonl``, ``*-events.jsonl``)."""
    names = {f.name.removesuffix(".1") for f in d.glob(f"*{NAME}.jsonl*")}
    return [d / n for n in sorted(names) if n.endswith(f"{NAME}.jsonl")]


def _statepath(confdir: Path | None) -> str | None:
    """upsd.conf's STATEPATH (the state directory follows it), quietly: a broken upsd.conf is
    the bridge's to report, not ours."""
    if confdir is None:
        return None
    try:
        return parse_upsd_conf(confdir / "upsd.conf").statepath
    except (ConfigError, OSError):
        return None


def _find_dir(explicit: Path | None, confdir: Path | None = None) -> Path | str:
    """The state directory to read, or an error message."""
    if explicit is not None:
        if not explicit.is_dir():
            return f"state directory {explicit} not found"
        return explicit
    tried = _candidates(None, confdir, _statepath(confdir))
    for d in tried:
        if _histories(d):
            return d
    return (f"no event history in {' or '.join(map(str, tried))} "
            "(has the bridge run here? use --state-dir DIR)")


def _local(ts: str) -> str:
    try:
        return parse_ts(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return ts


def _by(rec: Event) -> str:
    user, addr = rec.get("user"), rec.get("addr")
    if user is None and addr is None:
        return ""
    return f"{user or '-'}@{addr or '-'}"


def _table(records: list[Event]) -> str:
    rows = [("SEQ", "TIME", "KIND", "UPS", "BY", "DETAIL")]
    for r in records:
        rows.append((str(r.get("seq", "")), _local(str(r.get("ts", ""))), str(r.get("kind", "")),
                     str(r.get("ups") or "-"), _by(r) or "-", str(r.get("detail", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(row[1:5], widths[1:], strict=True)]
        lines.append("  ".join([*cells, row[5]]).rstrip())
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.count < 0:
        return _fail("-n expects a number >= 0")
    kinds = {k.strip() for arg in args.kind for k in arg.split(",") if k.strip()}
    if unknown := sorted(kinds - set(KINDS)):
        return _fail(f"unknown kind {', '.join(unknown)} (kinds: {', '.join(KINDS)})")
    since: datetime | None = None
    if args.since:
        try:
            since = parse_ts(args.since)
        except ValueError:
            return _fail(f"--since: {args.since!r} is not an ISO 8601 time (e.g. 2026-05-01T12:00)")
    confdir = args.config_dir
    if confdir is None and os.environ.get("NUT_CONFPATH"):
        confdir = Path(os.environ["NUT_CONFPATH"])
    where = _find_dir(args.state_dir, confdir)
    if isinstance(where, str):
        return _fail(where)
    sources: list[list[tuple[Event, str]]] = []
    for live in _histories(where):
        try:
            parts: list[Loaded] = [read_file(live.with_name(live.name + ".1")), read_file(live)]
        except OSError as exc:
            return _fail(f"cannot read {live}: {exc.strerror or exc}")
        sources.append([x for part in parts for x in part.records])
    # each file in its own order (even if the clock stepped back); files merged by time
    merged: Iterable[tuple[Event, str]] = (
        sources[0] if len(sources) == 1 else heapq.merge(*sources, key=lambda x: str(x[0]["ts"])))
    matched: list[tuple[Event, str]] = []
    for rec, line in merged:
        if kinds and rec.get("kind") not in kinds:
            continue
        if args.ups and not ups_matches(rec.get("ups"), args.ups):
            continue
        if since is not None:
            try:
                if parse_ts(rec["ts"]) < since:
                    continue
            except ValueError:
                continue
        matched.append((rec, line))
    if args.count:
        matched = matched[-args.count:]
    try:
        if args.json:
            sys.stdout.write("".join(line + "\n" for _, line in matched))
        elif matched:
            sys.stdout.write(_table([rec for rec, _ in matched]))
        else:
            sys.stdout.write("No events.\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `nutbridge events | head`: quietly, also at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def entry() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entry()
