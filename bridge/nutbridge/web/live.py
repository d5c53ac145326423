"""The status page's live side: one summary per UPS, its last hour, and the SSE fan-out.

Three layers, the first two pure (no sockets, no event loop), so they are tested directly:

* :func:`summarize` reads a :class:`~nutbridge.state.Device` into the few figures a person
  looks at (status in words and a severity, charge, runtime, load, input/output voltage,
  stale/offline), the same dict the page renders, ``/api/ups`` returns and SSE pushes;
* :class:`Series` keeps the last hour of a few values per UPS in fixed-size arrays: sampled
  on change, at most every ``interval`` seconds, so memory per UPS is bounded (361 samples
  of a time and 5 numbers: about 10 kB) whatever the UPS does;
* :class:`LiveHub` subscribes to every device (``Device.subscribe``), coalesces changes to at
  most one update per UPS per :data:`COALESCE` seconds and puts each update in every
  connected client's bounded queue without waiting. A client whose queue is full (it does
  not read) is dropped: the bridge never waits for a browser.

The hub also notices what no device notification announces: data turning stale by age
(``Device.availability`` depends on the clock) and new history records (commands, SETs),
with a once-a-second tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..history import Event, public
from ..server.frontend import Frontend
from ..state import Device, DriverState

log = logging.getLogger("nutbridge.web")

COALESCE = 0.1  # at most one update per UPS per 100 ms
TICK = 1.0  # staleness by age and new history records are looked for this often
WINDOW = 3600.0  # the chart's span
SAMPLE_EVERY = 10.0  # seconds between chart samples of one UPS (at most)
CLIENT_QUEUE = 256  # messages waiting for one SSE client before it is dropped
MAX_CLIENTS = 256  # SSE streams at once (each holds a queue); more are refused with 503
HISTORY_SHOWN = 50  # events on the page and in an SSE snapshot

# ups.status tokens in words, in the order they are shown
STATUS_WORDS: dict[str, str] = {
    "FSD": "forced shutdown",
    "OB": "on battery",
    "OL": "online",
    "LB": "low battery",
    "HB": "high battery",
    "RB": "replace battery",
    "OFF": "output off",
    "OVER": "overloaded",
    "BYPASS": "on bypass",
    "CAL": "calibrating",
    "ALARM": "alarm",
    "TRIM": "trimming voltage",
    "BOOST": "boosting voltage",
    "ECO": "eco mode",
    "CHRG": "charging",
    "DISCHRG": "discharging",
    "WAIT": "waiting for data",
}
_ALARM = frozenset({"FSD", "LB", "OFF", "OVER"})
_WARN = frozenset({"OB", "RB", "BYPASS", "ALARM", "CAL", "HB"})

# the numbers of a summary: key -> NUT variable
FIGURES: dict[str, str] = {
    "charge": "battery.charge",
    "runtime": "battery.runtime",
    "load": "ups.load",
    "input_voltage": "input.voltage",
    "output_voltage": "output.voltage",
    "realpower": "ups.realpower",
    "temperature": "ups.temperature",
}
# what the chart buffer keeps per sample (besides its time)
SERIES_FIELDS = ("charge", "load", "runtime", "input_voltage", "output_voltage")


def status_words(tokens: Iterable[str]) -> list[str]:
    """ups.status tokens as words, known ones in a fixed order, unknown ones as sent."""
    toks = list(dict.fromkeys(tokens))
    known = [STATUS_WORDS[t] for t in STATUS_WORDS if t in toks]
    return known + [t for t in toks if t not in STATUS_WORDS]


def severity(state: str, tokens: Iterable[str]) -> str:
    """One word the page colours by: ok, warn, alarm, stale, offline, wait or unknown."""
    if state in ("stale", "offline", "wait"):
        return state
    toks = set(tokens)
    if toks & _ALARM:
        return "alarm"
    if toks & _WARN:
        return "warn"
    return "ok" if "OL" in toks else "unknown"


def number(text: str | None) -> float | None:
    """A NUT value as a number (None when absent or not a finite number)."""
    if text is None:
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def device_state(dev: Device, maxage: float, now: float | None = None) -> tuple[str, str | None]:
    """(ok | wait | stale | offline, the ERR code upsd answers with or None)."""
    code = dev.availability(maxage, now)
    if code == "DRIVER-NOT-CONNECTED":
        return "offline", code
    if code is not None:
        return "stale", code
    return ("wait" if dev.driver_state is DriverState.WAIT else "ok"), None


def summarize(dev: Device, maxage: float, now: float | None = None) -> dict[str, Any]:
    """What the page shows of one UPS (and ``/api/ups`` returns), from memory only."""
    state, error = device_state(dev, maxage, now)
    status = dev.served_status()
    tokens = status.split()
    out: dict[str, Any] = {
        "name": dev.name,
        "desc": dev.desc or "",
        "mfr": dev.value("device.mfr") or dev.value("ups.mfr") or "",
        "model": dev.value("device.model") or dev.value("ups.model") or "",
        "status": status,
        "flags": tokens,
        "status_text": ", ".join(status_words(tokens)) if tokens else "no status",
        "severity": severity(state, tokens),
        "state": state,
        "available": error is None,
        "error": error,
    }
    for key, var in FIGURES.items():
        out[key] = number(dev.value(var))
    return out


class Series:
    """The last ``window`` seconds of :data:`SERIES_FIELDS` of one UPS, in a fixed ring.

    A sample is taken when the values changed and the last one is at least ``interval``
    old (:meth:`offer`); ``capacity`` is ``window / interval + 1``, so the ring holds the
    window and never grows. NaN stands for "no value" (float32 keeps it small).
    """

    def __init__(self, interval: float = SAMPLE_EVERY, window: float = WINDOW) -> None:
        self.interval = interval
        self.window = window
        self.capacity = int(window / interval) + 1
        self._t = array("d", [0.0]) * self.capacity
        self._v = [array("f", [math.nan]) * self.capacity for _ in SERIES_FIELDS]
        self._head = 0  # next slot to write
        self._count = 0
        self._last: tuple[float | None, ...] | None = None
        self.held = False  # a change was declined for the interval: take it when due

    def __len__(self) -> int:
        return self._count

    def offer(self, now: float, values: dict[str, Any]) -> list[float | None] | None:
        """Record ``values`` at wall time ``now`` if due; the sample taken, or None."""
        row = tuple(values.get(f) for f in SERIES_FIELDS)
        if row == self._last or not any(v is not None for v in row):
            self.held = False
            return None
        if self._count and now - self._t[(self._head - 1) % self.capacity] < self.interval:
            self.held = True
            return None
        self.held = False
        i = self._head
        self._t[i] = now
        for col, v in zip(self._v, row, strict=True):
            col[i] = math.nan if v is None else v
        self._head = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)
        self._last = row
        return [round(now, 1), *row]

    def points(self, now: float | None = None) -> list[list[float | None]]:
        """The samples of the window, oldest first: ``[t, charge, load, ...]``."""
        now = time.time() if now is None else now
        out: list[list[float | None]] = []
        start = (self._head - self._count) % self.capacity
        for k in range(self._count):
            i = (start + k) % self.capacity
            t = self._t[i]
            if t < now - self.window:
                continue
            row: list[float | None] = [round(t, 1)]
            for col in self._v:
                v = col[i]
                row.append(None if math.isnan(v) else round(v, 2))
            out.append(row)
        return out


def sse(event: str, data: object, event_id: int | None = None) -> bytes:
    """One Server-Sent Events message (data is JSON, one line, so no ``data:`` splitting)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(eq=False)
class Client:
    """One SSE stream: its queue, whether it sees who did what, why it was dropped."""

    addr: str
    private: bool  # logged in with a right: history records show user and addr
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    abort: Callable[[], None] | None = None  # closes the connection at once (set by the handler)

    def offer(self, msg: bytes) -> bool:
        """Queue ``msg``; False (and dropped) when the client has fallen too far behind."""
        if self.dropped.is_set():
            return False
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped.set()
            return False
        return True


class LiveHub:
    """Device notifications -> coalesced per-UPS updates -> every SSE client's queue."""

    def __init__(self, frontend: Frontend, interval: float = SAMPLE_EVERY) -> None:
        self.frontend = frontend
        self.interval = interval
        self.series: dict[str, Series] = {}
        self.clients: set[Client] = set()
        self.dropped_total = 0  # slow clients dropped since start
        self._last: dict[str, dict[str, Any]] = {}  # summary last sent, by UPS name
        self._sent_at: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._unsub: list[Callable[[], None]] = []
        self._unwatch: Callable[[], None] | None = None
        self._tick: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0  # newest history record already pushed

    @property
    def maxage(self) -> float:
        return float(self.frontend.upsd.maxage)

    # ---- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._subscribe_all()
        self._unwatch = self.frontend.watch_devices(self._devices_changed)
        self._seq = self._newest_seq()
        self._tick = asyncio.create_task(self._ticker(), name="nutbridge-web-live")

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._unsubscribe_all()
        self.close_clients()

    def close_clients(self) -> None:
        """End every stream (shutdown: handlers return instead of holding the server)."""
        for c in list(self.clients):
            self.clients.discard(c)
            c.dropped.set()
            if c.abort is not None:
                c.abort()

    def _subscribe_all(self) -> None:
        now = time.time()
        for dev in self.frontend.devices:
            self._unsub.append(dev.subscribe(self._on_change))
            s = summarize(dev, self.maxage)
            self._last[dev.name] = s
            self._series(dev.name).offer(now, s)

    def _unsubscribe_all(self) -> None:
        for u in self._unsub:
            u()
        self._unsub.clear()
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()

    def _devices_changed(self) -> None:
        """A reload added or removed UPSes: follow, and tell clients to reload their list."""
        self._unsubscribe_all()
        names = {d.name for d in self.frontend.devices}
        for gone in set(self.series) - names:
            del self.series[gone]
            self._last.pop(gone, None)
            self._sent_at.pop(gone, None)
        self._subscribe_all()
        self._broadcast(sse("devices", {"ups": sorted(names, key=str.lower)}))

    def _series(self, name: str) -> Series:
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = Series(self.interval)
        return s

    # ---- device changes ----------------------------------------------------------------
    def _on_change(self, dev: Device, changed: frozenset[str]) -> None:
        # called synchronously by a driver's write: only schedule, never work here
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # a write from another thread: hop over to the loop
            loop.call_soon_threadsafe(self._on_change, dev, changed)
            return
        name = dev.name
        if name in self._timers:
            return  # an update is already due: it will read the newest state
        wait = max(0.0, self._sent_at.get(name, 0.0) + COALESCE - loop.time())
        self._timers[name] = loop.call_later(wait, self._flush, dev)

    def _flush(self, dev: Device) -> None:
        self._timers.pop(dev.name, None)
        self._sent_at[dev.name] = asyncio.get_running_loop().time()
        self._push(dev, summarize(dev, self.maxage))
        self._push_history()

    def _push(self, dev: Device, summary: dict[str, Any]) -> None:
        point = self._series(dev.name).offer(time.time(), summary)
        if summary == self._last.get(dev.name) and point is None:
            return
        self._last[dev.name] = summary
        self._broadcast(sse("ups", {**summary, "point": point}))

    def _newest_seq(self) -> int:
        newest = self.frontend.history.records(count=1)
        return int(newest[-1]["seq"]) if newest else 0

    def _push_history(self) -> None:
        """Send history records newer than the last one sent (one line parsed when none)."""
        newest = self._newest_seq()
        if newest <= self._seq:
            return
        count = min(newest - self._seq, HISTORY_SHOWN)
        recs = [r for r in self.frontend.history.records(count=count) if r["seq"] > self._seq]
        self._seq = newest
        if not recs or not self.clients:
            return
        priv = [sse("history", r, int(r["seq"])) for r in recs]
        pub = [sse("history", public(r), int(r["seq"])) for r in recs]
        for c in list(self.clients):
            for msg in priv if c.private else pub:
                if not c.offer(msg):
                    self._drop(c)
                    break

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self._tick_once()
            except Exception:  # the page must not take the bridge down
                log.exception("status page: live update failed")

    def _tick_once(self) -> None:
        maxage = self.maxage
        for dev in self.frontend.devices:
            last = self._last.get(dev.name)
            if dev.name in self._timers or last is None:
                continue
            # stale by age (or back) is announced by no notification; a sample held back by
            # the interval is due now. Anything else was pushed when it changed.
            state, error = device_state(dev, maxage)
            if (state, error) != (last["state"], last["error"]) or self._series(dev.name).held:
                self._push(dev, summarize(dev, maxage))
        self._push_history()

    # ---- clients -------------------------------------------------------------------------
    def snapshot(self, private: bool) -> bytes:
        """What a (re)connecting client gets first: every UPS now, and the recent events."""
        ups = [summarize(d, self.maxage) for d in self.frontend.devices]
        recs: list[Event] = self.frontend.history.records(count=HISTORY_SHOWN)
        events = recs if private else [public(r) for r in recs]
        return sse("snapshot", {"now": round(time.time(), 1), "ups": ups, "events": events})

    def connect(self, addr: str, private: bool) -> Client | None:
        """A new SSE client, its snapshot already queued; None when there are too many."""
        if len(self.clients) >= MAX_CLIENTS:
            return None
        c = Client(addr, private)
        c.offer(self.snapshot(private))
        self.clients.add(c)
        return c

    def disconnect(self, c: Client) -> None:
        self.clients.discard(c)

    def _broadcast(self, msg: bytes) -> None:
        for c in list(self.clients):
            if not c.offer(msg):
                self._drop(c)

    def _drop(self, c: Client) -> None:
        c.dropped.set()
        if c.abort is not None:
            c.abort()  # a write may be stuck on the full socket: do not wait for it
        if c in self.clients:
            self.clients.discard(c)
            self.dropped_total += 1
            log.warning("status page: dropped a live client at %s that does not keep up "
                        "(%d updates waiting)", c.addr, c.queue.qsize())
