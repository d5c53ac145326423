"""The event history: power events, driver availability, client actions, life cycle.

One JSON object per line in ``<state dir>/events.jsonl`` (docs/events.md)::

    {"ts":"2026-05-01T12:00:00.123Z","seq":42,"kind":"power","ups":"sim",
     "detail":"on battery","status":"OB DISCHRG","set":["OB"],"cleared":["OL"]}

* ``seq`` grows by one per record and carries on across restarts;
* bounded: when the live file holds half the maximum, it becomes ``events.jsonl.1``
  (replacing the previous one), so at most ``max_records`` are on disk, oldest dropped;
* crash-safe: each record is one ``write`` to an ``O_APPEND`` file; a torn last line
  (crash mid-write) is skipped by readers and cut off when the bridge opens the file;
* one writer per file (an ``flock`` on ``events.lock``); a second process, a read-only
  or a full disk keeps its history in memory only, after one warning.

The same records are served over the protocol (``LIST EVENT``, server/core.py) and
listed by ``nutbridge events`` (events/main.py), which reads the files directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .state import Device, DriverState
from .statedir import StateDir

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/BSD/macOS: no cross-process lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

NAME = "events"
DEFAULT_MAX = 10_000
MAX_ENV = "NUTBRIDGE_EVENTS_MAX"  # overrides the default bound (>= 2)
KINDS = ("power", "driver", "command", "set", "fsd", "monitor", "server")
PRIVATE = ("user", "addr")  # hidden from protocol clients that may not act (docs/events.md)
MAX_TEXT = 256  # longer string fields are cut: records stay small, LIST lines fit 512 bytes

Event = dict[str, Any]

# ups.status tokens whose changes are power events. CHRG/DISCHRG, TRIM/BOOST and ECO
# are left out: they follow routine regulation and would crowd out the rest.
TRACKED = ("OL", "OB", "LB", "HB", "RB", "FSD", "OFF", "BYPASS", "OVER", "CAL", "ALARM")
_SET_TEXT = {
    "OL": "on line power", "OB": "on battery", "LB": "low battery", "HB": "high battery",
    "RB": "battery needs replacing", "FSD": "forced shutdown (FSD)", "OFF": "output off",
    "BYPASS": "on bypass", "OVER": "overloaded", "CAL": "calibrating", "ALARM": "alarm",
}
_CLEAR_TEXT = {
    "OL": "not on line power", "OB": "off battery", "LB": "battery no longer low",
    "HB": "battery no longer high", "RB": "battery no longer needs replacing",
    "FSD": "FSD cleared", "OFF": "output on", "BYPASS": "off bypass",
    "OVER": "no longer overloaded", "CAL": "calibration finished", "ALARM": "alarm cleared",
}


def configured_max() -> int:
    """The bound: $NUTBRIDGE_EVENTS_MAX, else 10 000."""
    text = os.environ.get(MAX_ENV, "").strip()
    if text:
        try:
            return max(2, int(text))
        except ValueError:
            log.warning("%s=%r is not a number; keeping %d events", MAX_ENV, text, DEFAULT_MAX)
    return DEFAULT_MAX


def now_iso() -> str:
    """UTC, ISO 8601 with milliseconds: 2026-05-01T12:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """A record's ``ts`` (or any ISO 8601 time; naive means local time) as an aware datetime."""
    t = datetime.fromisoformat(text.strip())
    return t.astimezone() if t.tzinfo is None else t


def dumps(rec: Event) -> str:
    # ASCII only: a stored line can go on the wire as it is (NUT keeps 0x20-0x7F)
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=True, default=str)


def parse_line(line: str | bytes) -> Event | None:
    """A record, or None for a line that is not one (torn, garbage)."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if (isinstance(rec, dict) and isinstance(rec.get("seq"), int) and isinstance(rec.get("kind"), str)
            and isinstance(rec.get("ts"), str)):
        return rec
    return None


@dataclass(frozen=True, slots=True)
class Loaded:
    records: list[tuple[Event, str]]  # (record, its line), file order
    skipped: int  # lines that were not records
    torn_at: int | None  # byte offset of an unterminated last line, if any


def read_file(path: Path) -> Loaded:
    """Every record of one history file; a missing file is empty. Raises OSError."""
    try:
        # never read a FIFO or device (e.g. a link to /dev/zero) as history
        if not stat.S_ISREG(path.stat().st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded([], 0, None)
    records: list[tuple[Event, str]] = []
    skipped = 0
    torn_at: int | None = None
    if data and not data.endswith(b"\n"):
        torn_at = data.rfind(b"\n") + 1
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        rec = parse_line(raw)
        if rec is None:
            skipped += 1
        else:
            records.append((rec, raw.decode("utf-8", "replace")))
    return Loaded(records, skipped, torn_at)


def ups_matches(rec_ups: object, name: str | None) -> bool:
    """Filter by UPS: same name (any case), or a monitor's ``name@host[:port]``."""
    if name is None or name == "*":
        return True
    if not isinstance(rec_ups, str):
        return False
    a, b = rec_ups.lower(), name.lower()
    return a == b or a.startswith(b + "@")


def public(rec: Event) -> Event:
    """The record without who did it (for clients that may not act themselves)."""
    return {k: v for k, v in rec.items() if k not in PRIVATE}


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 3] + "..."
    return value


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    ups: str | None
    kind: str
    line: str


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class History:
    """The bridge's event history: append-only files plus the same records in memory.

    Nothing touches the disk before the first record or read. ``where`` is the state
    directory (a :class:`StateDir`, resolved lazily, or a path); None keeps the
    history in memory only.
    """

    def __init__(self, where: StateDir | Path | None, max_records: int | None = None,
                 name: str = NAME) -> None:
        self._where = where
        self.max_records = max(2, max_records if max_records is not None else configured_max())
        # the live file rotates at half the bound, so live + .1 never exceed it
        self._half = self.max_records // 2
        self.name = name
        self._mem: deque[_Entry] = deque()  # the records of .1 then of the live file
        self._rot = 0  # how many of _mem are in the .1 file
        self._live = 0  # how many are in the live file
        self._seq = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._opened = False
        self._failed = False  # a disk error happened: memory only from then on
        self._unwatch: list[Callable[[], None]] = []
        self.dir: Path | None = None

    # ---- files ---------------------------------------------------------------------
    @property
    def live_path(self) -> Path | None:
        return self.dir / f"{self.name}.jsonl" if self.dir is not None else None

    @property
    def on_disk(self) -> bool:
        return self._fd is not None

    def _resolve(self) -> Path | None:
        w = self._where
        if isinstance(w, StateDir):
            return w.path  # None: StateDir has already warned that nothing is kept
        if w is None:
            return None
        try:
            w.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc, f"cannot create {w}")
            return None
        return w

    def _fail(self, exc: OSError | str, what: str) -> None:
        """Carry on in memory only; warn once."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if not self._failed:
            self._failed = True
            reason = exc if isinstance(exc, str) else (exc.strerror or str(exc))
            log.warning("event history: %s (%s); events are now kept in memory only", what, reason)

    def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self.dir = self._resolve()
        live = self.live_path
        if self.dir is None or live is None:
            return
        rot = live.with_name(live.name + ".1")
        try:
            old, cur = read_file(rot), read_file(live)
        except OSError as exc:
            self._fail(exc, f"cannot read {live}")
            return
        self._mem.clear()
        for rec, line in old.records + cur.records:
            self._mem.append(self._entry(rec, line))
            self._seq = max(self._seq, rec["seq"])
        self._rot, self._live = len(old.records), len(cur.records)
        if not self._lock():
            return
        try:
            if cur.torn_at is not None:
                # the bridge died mid-write: cut the fragment so the next record starts clean
                os.truncate(live, cur.torn_at)
                log.info("event history: dropped an incomplete last line of %s", live)
            if self._live > self._half or self._rot > self._half:
                self._shrink(live, rot)
            self._fd = os.open(live, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise IsADirectoryError(f"{live} is not a regular file")
        except OSError as exc:
            self._fail(exc, f"cannot write {live}")

    def _lock(self) -> bool:
        """One writer per history: a second bridge on this state dir keeps its own in memory."""
        if fcntl is None or self.dir is None:
            return True
        path = self.dir / f"{self.name}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._fail(exc, f"cannot create {path}")
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            self._fail(f"held by pid {holder}", f"{self.dir / self.name}.jsonl is in use by another process")
            return False
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return True

    def _shrink(self, live: Path, rot: Path) -> None:
        """The bound was lowered since the files were written: keep the newest half."""
        keep = list(self._mem)[-self._half:]
        tmp = rot.with_name(f".{rot.name}.{os.getpid()}")
        tmp.write_text("".join(e.line + "\n" for e in keep), encoding="ascii", errors="replace")
        os.replace(tmp, rot)
        os.truncate(live, 0)
        self._mem = deque(keep)
        self._rot, self._live = len(keep), 0

    def _rotate(self) -> None:
        assert self._fd is not None and self.live_path is not None
        live = self.live_path
        os.close(self._fd)
        self._fd = None
        try:
            os.replace(live, live.with_name(live.name + ".1"))
            self._fd = os.open(live, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._fail(exc, f"cannot rotate {live}")
            return
        for _ in range(min(self._rot, len(self._mem))):
            self._mem.popleft()
        self._rot, self._live = self._live, 0

    @staticmethod
    def _entry(rec: Event, line: str) -> _Entry:
        ups = rec.get("ups")
        return _Entry(rec["seq"], ups if isinstance(ups, str) else None, str(rec["kind"]), line)

    # ---- writing -------------------------------------------------------------------
    def record(self, kind: str, ups: str | None = None, detail: str = "", *,
               user: str | None = None, addr: str | None = None, **fields: object) -> Event:
        """Append one event (never raises for disk trouble) and return it.

        ``user``/``addr`` name who acted (never a password); ``fields`` are extra
        keys (None values left out).
        """
        return self._record(kind, ups, detail, user, addr, fields)

    def _record(self, kind: str, ups: str | None, detail: str, user: str | None, addr: str | None,
                fields: dict[str, object]) -> Event:
        self._open()
        self._seq += 1
        rec: Event = {"ts": now_iso(), "seq": self._seq, "kind": kind, "ups": ups,
                      "detail": _clip(detail)}
        if user is not None:
            rec["user"] = _clip(user)
        if addr is not None:
            rec["addr"] = addr
        for k, v in fields.items():
            if v is not None and k not in rec:
                rec[k] = _clip(v)
        line = dumps(rec)
        if self._fd is not None and self._live >= self._half:
            self._rotate()
        if self._fd is not None:
            # No fsync per event: on an SD card or a busy disk one fsync can stall the
            # event loop for 10-100s of ms (just when upsmon polls hardest) and wears the
            # flash. A crash loses at most the last few seconds the kernel had not
            # written back; a torn last line is skipped. close() and sync() do fsync.
            try:
                _write_all(self._fd, (line + "\n").encode("ascii"))
                self._live += 1
            except OSError as exc:
                self._fail(exc, f"cannot write {self.live_path}")
        self._mem.append(self._entry(rec, line))
        if self._fd is None:
            while len(self._mem) > self.max_records:
                self._mem.popleft()
        return rec

    def sync(self) -> None:
        """fsync now: before a shutdown command, so its records survive the power cut."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                log.debug("event history: fsync failed: %s", exc)

    def close(self) -> None:
        """Stop watching devices, fsync and close (a later record opens the files again)."""
        self.unwatch()
        if self._fd is not None:
            self.sync()
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._opened = False  # reopening reloads from the files
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # ---- reading -------------------------------------------------------------------
    def records(self, ups: str | None = None, kinds: Iterable[str] | None = None,
                count: int | None = None) -> list[Event]:
        """The newest ``count`` matching records (all when None), oldest first."""
        self._open()
        want = set(kinds) if kinds is not None else None
        out: list[Event] = []
        for e in reversed(self._mem):
            if count is not None and len(out) >= count:
                break
            if want is not None and e.kind not in want:
                continue
            if not ups_matches(e.ups, ups):
                continue
            rec = parse_line(e.line)
            if rec is not None:
                out.append(rec)
        out.reverse()
        return out

    # ---- sources -------------------------------------------------------------------
    def watch(self, devices: Iterable[Device]) -> None:
        """Record power (ups.status) and driver availability changes of these devices."""
        for dev in devices:
            self._unwatch.append(dev.subscribe(_Watcher(self, dev)))

    def unwatch(self) -> None:
        for u in self._unwatch:
            u()
        self._unwatch.clear()

    def server_started(self, ups_count: int) -> None:
        self.record("server", None, f"NUT Bridge {__version__} started", ups_count=ups_count)

    def server_stopping(self) -> None:
        """Record the stop and stop watching (drivers closing are not events)."""
        self.unwatch()
        self.record("server", None, "NUT Bridge stopping")

    def monitor_recorder(self) -> Callable[..., None]:
        """``record(event, **fields)`` for the monitor (monitor/runner.py): kind ``monitor``."""

        def rec(event: str, **fields: object) -> None:
            ups = fields.pop("ups", None)
            message = fields.get("message")
            if isinstance(message, str) and message:
                detail = message
            else:
                words = [event, *(str(fields[k]) for k in ("step",) if fields.get(k) is not None)]
                words += [f"{k}={v}" for k, v in fields.items() if k not in ("step", "message")
                          and v is not None]
                detail = " ".join(words)
            self._record("monitor", ups if isinstance(ups, str) else None, detail, None, None,
                         {"event": event, **fields})
            if event in ("shutdown", "killpower"):
                self.sync()  # the power may be gone in a moment

        return rec


def _driver_text(old: DriverState, new: DriverState) -> str | None:
    if new is DriverState.STALE:
        return "data stale"
    if new is DriverState.NOT_CONNECTED:
        return "not connected"
    if old is DriverState.NOT_CONNECTED:
        return "connected"
    if old is DriverState.STALE:
        return "recovered"
    return None  # WAIT -> OK: the first data of a start, not news


def power_change(old: frozenset[str], new: frozenset[str]) -> tuple[list[str], list[str], str]:
    """(set, cleared, human text) between two sets of tracked status tokens."""
    gained = [t for t in TRACKED if t in new and t not in old]
    lost = [t for t in TRACKED if t in old and t not in new]
    texts = [_SET_TEXT[t] for t in gained]
    texts += [_CLEAR_TEXT[t] for t in lost
              if not (t == "OL" and "OB" in gained) and not (t == "OB" and "OL" in gained)]
    return gained, lost, "; ".join(texts)


class _Watcher:
    """Device listener: status and availability transitions -> records."""

    def __init__(self, history: History, dev: Device) -> None:
        self.history = history
        self.state = dev.driver_state
        # as if on mains before the first status: a start on mains is not an event,
        # a start on battery is
        self.tokens = frozenset({"OL"})

    def __call__(self, dev: Device, changed: frozenset[str]) -> None:
        st = dev.driver_state
        if st is not self.state:
            old, self.state = self.state, st
            text = _driver_text(old, st)
            if text:
                self.history.record("driver", dev.name, text, state=st.value)
        if st is not DriverState.OK or (changed and not any(n.lower() == "ups.status" for n in changed)):
            return
        tokens = frozenset(t for t in dev.served_status().split() if t in TRACKED)
        if not tokens or tokens == self.tokens:
            return  # no status (a PDU, a dump without one): nothing to compare
        gained, lost, text = power_change(self.tokens, tokens)
        self.tokens = tokens
        self.history.record("power", dev.name, text, status=dev.served_status(),
                            set=gained, cleared=lost)


def wire_json(rec: Event, private: bool, budget: int) -> str:
    """The record as JSON whose protocol-escaped form fits ``budget`` bytes.

    Records are small (strings are cut at 256 characters) but escaping can double
    them; a record that still does not fit is sent with its core fields only and a
    shorter ``detail``, marked ``"truncated": true``.
    """
    r = rec if private else public(rec)
    text = dumps(r)
    if _escaped_len(text) <= budget:
        return text
    core: Event = {k: r[k] for k in ("ts", "seq", "kind", "ups", "detail", *PRIVATE) if k in r}
    core["truncated"] = True
    detail = str(core.get("detail") or "")

    def fits(n: int) -> str | None:
        text = dumps({**core, "detail": detail[:n]})
        return text if _escaped_len(text) <= budget else None

    if fits(0) is None:
        return dumps({"ts": r.get("ts"), "seq": r.get("seq"), "kind": r.get("kind"), "truncated": True})
    lo, hi = 0, len(detail)  # the longest detail prefix that fits: escaping makes it non-linear
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid) is None:
            hi = mid - 1
        else:
            lo = mid
    return fits(lo) or ""


def _escaped_len(text: str) -> int:
    return len(text) + sum(text.count(c) for c in '"\\#')
