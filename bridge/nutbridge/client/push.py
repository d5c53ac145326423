"""Push updates from a NUT Bridge (the SUBSCRIBE extension, docs/push.md).

``subscribe()`` opens its own connection (STARTTLS first when given TLS options),
sends ``SUBSCRIBE``, and yields one :class:`Update` per batch the bridge sends: first
a full snapshot per UPS, then only what changed. A server that is not a bridge answers
``ERR UNKNOWN-COMMAND``, raised as :class:`PushNotSupported` so the caller falls back to
polling.

``watch()`` (or :meth:`UpsStates.follow`) does the merging for the caller: it keeps
every UPS's whole state (variables and availability) and yields the UPS's
:class:`UpsState` after each batch.

The lines are read by ``protocol/messages.py``'s readers (``parse_subscribed``,
``parse_push``), next to the writers the bridge sends them with.

Memory stays bounded whatever the server sends: the tokenizer holds at most one
line, one read queues at most :data:`READ_SIZE` lines, and a batch larger than
:data:`MAX_BATCH_BYTES` raises ``NutError(PROTOCOL-ERROR)``. A server that floods
batches is read only as fast as the caller consumes them (TCP pushes back).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from types import MappingProxyType

from ..protocol import messages
from ..protocol.errors import Err
from ..protocol.tokenizer import Line, Tokenizer
from ..protocol.wire import request
from .connection import Connection
from .core import start_tls
from .errors import PROTOCOL_ERROR, NutError
from .tls import TLSMode, TLSOptions

# Bytes handed to the tokenizer at once: a flood of empty lines queues at most this many.
READ_SIZE = 4096
# Names and values one batch may carry. The bridge disconnects a subscriber that falls
# 1 MiB behind, so no batch it sends is bigger; a BEGIN without END stops here.
MAX_BATCH_BYTES = 1 << 20


class PushNotSupported(NutError):
    """The server does not offer push updates: poll it instead."""


@dataclass
class Update:
    ups: str
    values: dict[str, str] = field(default_factory=dict)  # changed (or, first, all) variables
    deleted: set[str] = field(default_factory=set)
    state: str = "OK"  # OK, WAIT, DATA-STALE or DRIVER-NOT-CONNECTED

    @property
    def available(self) -> bool:
        return self.state in ("OK", "WAIT")


async def subscribe(host: str, port: int, ups: list[str] | None = None,
                    timeout: float = 10.0, tls: TLSOptions | None = None) -> AsyncGenerator[Update, None]:
    """Yield updates until the connection drops (then ConnectionError).

    ``tls``: STARTTLS first, as :class:`~nutbridge.client.NutClient` does with the
    same options (and with the same errors: TLSNotOffered, CertificateMismatch...).
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    if tls is not None and tls.mode is not TLSMode.OFF:
        try:
            await start_tls(Connection(reader, writer), host, tls, timeout)
        except BaseException:
            writer.close()
            raise
    tok = Tokenizer()
    pending: deque[tuple[str, ...]] = deque()

    async def line() -> tuple[str, ...]:
        while not pending:
            data = await reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("push connection closed by the server")
            pending.extend(ev.words for ev in tok.feed(data) if isinstance(ev, Line))
        return pending.popleft()

    try:
        writer.write(request("SUBSCRIBE", *(ups or ["*"])))
        await writer.drain()
        first = await asyncio.wait_for(line(), timeout)
        try:
            messages.parse_subscribed(first)
        except messages.ErrorAnswer as exc:
            if exc.code in (Err.UNKNOWN_COMMAND, Err.INVALID_ARGUMENT):
                raise PushNotSupported(exc.code) from None
            raise NutError(exc.code) from None
        except messages.MalformedAnswer:
            raise NutError("UNKNOWN", detail=" ".join(first)) from None
        current: Update | None = None
        size = 0
        while True:
            msg = messages.parse_push(await line())
            if isinstance(msg, messages.UpdateBegin):
                current = Update(msg.ups)
                size = 0
            elif current is None or msg is None:
                continue
            elif isinstance(msg, messages.UpdateVar):
                current.values[msg.name] = msg.value
                size += len(msg.name) + len(msg.value)
            elif isinstance(msg, messages.UpdateDelvar):
                current.deleted.add(msg.name)
                size += len(msg.name)
            elif isinstance(msg, messages.UpdateState):
                current.state = msg.state
            else:  # UpdateEnd
                yield current
                current = None
            if size > MAX_BATCH_BYTES:
                raise NutError(PROTOCOL_ERROR, detail=f"push batch larger than {MAX_BATCH_BYTES} bytes")
    finally:
        writer.close()


# ---- whole UPS states ------------------------------------------------------------------


@dataclass(frozen=True)
class UpsState:
    """Everything pushed about one UPS so far, as of its latest batch."""

    ups: str
    variables: Mapping[str, str]  # every current variable (read-only view)
    state: str = "OK"  # OK, WAIT, DATA-STALE or DRIVER-NOT-CONNECTED
    # The batch that produced this state: what it set or removed, and whether it was
    # the UPS's snapshot (its first batch on this connection).
    changed: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()
    snapshot: bool = False

    @property
    def available(self) -> bool:
        return self.state in ("OK", "WAIT")

    @property
    def error(self) -> str | None:
        """The ERR code a poll would get now (DATA-STALE, DRIVER-NOT-CONNECTED), else None."""
        return None if self.available else self.state


class UpsStates(Mapping[str, UpsState]):
    """The merged state of every UPS a subscription reports, by UPS name.

    :meth:`apply` merges one :class:`Update` (sans-IO); :meth:`follow` subscribes and
    yields the new :class:`UpsState` after each batch. States outlive a connection:
    following again (after a drop) starts each UPS over from its new snapshot, and a
    snapshot without variables (a driver that is not connected) keeps the last known
    ones, marked unavailable by its state. UPSes the server no longer has stay until
    :meth:`forget`.
    """

    def __init__(self) -> None:
        self._states: dict[str, UpsState] = {}

    def __getitem__(self, ups: str) -> UpsState:
        return self._states[ups]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, update: Update, *, snapshot: bool = False) -> UpsState:
        """Merge one batch; ``snapshot``: it is the UPS's first on its connection,
        and replaces what was known (when it carries variables)."""
        old = self._states.get(update.ups)
        if snapshot and update.values:
            variables = dict(update.values)
        else:
            variables = dict(old.variables) if old is not None else {}
            variables.update(update.values)
        for name in update.deleted:
            variables.pop(name, None)
        new = UpsState(update.ups, MappingProxyType(variables), update.state,
                       frozenset(update.values), frozenset(update.deleted), snapshot)
        self._states[update.ups] = new
        return new

    def forget(self, ups: str) -> None:
        """Drop what is known about ``ups`` (e.g. removed from the server)."""
        self._states.pop(ups, None)

    async def follow(self, host: str, port: int, ups: list[str] | None = None,
                     timeout: float = 10.0, tls: TLSOptions | None = None) -> AsyncGenerator[UpsState, None]:
        """Subscribe and yield each batch's UPS as a whole state; errors as :func:`subscribe`."""
        seen: set[str] = set()
        async with aclosing(subscribe(host, port, ups, timeout, tls)) as updates:
            async for update in updates:
                state = self.apply(update, snapshot=update.ups not in seen)
                seen.add(update.ups)
                yield state


def watch(host: str, port: int, ups: list[str] | None = None,
          timeout: float = 10.0, tls: TLSOptions | None = None) -> AsyncGenerator[UpsState, None]:
    """Yield the whole :class:`UpsState` of a UPS after each of its batches.

    ``UpsStates().follow(...)``; keep an :class:`UpsStates` and call its ``follow``
    instead to see every UPS at any time, or to keep states across reconnections.
    """
    return UpsStates().follow(host, port, ups, timeout, tls)
