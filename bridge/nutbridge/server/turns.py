"""Fairness plumbing shared by the servers (upsd's TCP connections, a driver socket's peers).

* :class:`RoundRobin`: busy connections take turns from one queue that gets at most a
  fixed time of each pass of the event loop; a queued connection's socket is not read.
* :func:`set_reading`: pause or resume reading a transport, once per change.
* :class:`WasteBudget`: bytes a peer may waste (garbage, refused requests), a burst
  refilled at a rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, Protocol, TypeVar


class Turned(Protocol):
    """A connection that takes turns: ``queued`` while it waits for one."""

    queued: bool

    def set_reading(self, on: bool) -> None: ...

    def turn(self) -> None: ...


C = TypeVar("C", bound=Turned)


class RoundRobin(Generic[C]):
    """Turns for busy connections, round robin, at most ``seconds`` per pass of the event loop
    (a connection re-queues itself from :meth:`Turned.turn` while it has work left)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.busy: deque[C] = deque()
        self._pending = False  # a pass is scheduled with call_soon

    def __len__(self) -> int:
        return len(self.busy)

    def clear(self) -> None:
        self.busy.clear()

    def queue(self, conn: C) -> None:
        """Give ``conn`` a turn; its socket is not read meanwhile."""
        conn.queued = True
        conn.set_reading(False)
        self.busy.append(conn)
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._pass)

    def _pass(self) -> None:
        self._pending = False
        q = self.busy
        deadline = time.perf_counter() + self.seconds
        while q:
            conn = q.popleft()
            conn.queued = False
            conn.turn()
            if time.perf_counter() > deadline:
                break
        if q and not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._pass)


def set_reading(transport: asyncio.Transport | None, reading: bool, on: bool) -> bool:
    """Resume (``on``) or pause reading ``transport``, which is ``reading`` now; the new state
    (unchanged when it is already so, or the transport is gone or closing)."""
    if on == reading or transport is None or transport.is_closing():
        return reading
    if on:
        transport.resume_reading()
    else:
        transport.pause_reading()
    return on


class WasteBudget:
    """Bytes a peer may waste: ``burst`` at most, refilled at ``rate`` per second."""

    __slots__ = ("at", "burst", "left", "rate")

    def __init__(self, burst: int, rate: int, now: float | None = None) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.left = self.burst
        self.at = time.monotonic() if now is None else now

    def spend(self, nbytes: int) -> bool:
        """Draw ``nbytes``; False once the budget is gone."""
        now = time.monotonic()
        self.left = min(self.burst, self.left + (now - self.at) * self.rate) - nbytes
        self.at = now
        return self.left >= 0
