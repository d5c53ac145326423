"""Push updates from a NUT Bridge (the SUBSCRIBE extension, docs/push.md).

``subscribe()`` opens its own connection, sends ``SUBSCRIBE``, and yields one
:class:`Update` per batch the bridge sends: first a full snapshot per UPS, then
only what changed. A server that is not a bridge answers ``ERR UNKNOWN-COMMAND``,
raised as :class:`PushNotSupported` so the caller falls back to polling.

Memory stays bounded whatever the server sends: the tokenizer holds at most one
line, one read queues at most :data:`READ_SIZE` lines, and a batch larger than
:data:`MAX_BATCH_BYTES` raises ``NutError(PROTOCOL-ERROR)``. A server that floods
batches is read only as fast as the caller consumes them (TCP pushes back).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..protocol.tokenizer import Line, Tokenizer
from ..protocol.wire import request
from .errors import PROTOCOL_ERROR, NutError

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
                    timeout: float = 10.0) -> AsyncIterator[Update]:
    """Yield updates until the connection drops (then ConnectionError)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
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
        if first[:1] == ("ERR",):
            code = first[1] if len(first) > 1 else "UNKNOWN"
            if code in ("UNKNOWN-COMMAND", "INVALID-ARGUMENT"):
                raise PushNotSupported(code)
            raise NutError(code)
        if first[:2] != ("OK", "SUBSCRIBED"):
            raise NutError("UNKNOWN", detail=" ".join(first))
        current: Update | None = None
        size = 0
        while True:
            words = await line()
            kind = words[0] if words else ""
            if kind == "BEGIN" and len(words) >= 3:
                current = Update(words[2])
                size = 0
            elif current is None:
                continue
            elif kind == "VAR" and len(words) >= 4:
                current.values[words[2]] = words[3]
                size += len(words[2]) + len(words[3])
            elif kind == "DELVAR" and len(words) >= 3:
                current.deleted.add(words[2])
                size += len(words[2])
            elif kind == "STATE" and len(words) >= 3:
                current.state = words[2]
            elif kind == "END":
                yield current
                current = None
            if size > MAX_BATCH_BYTES:
                raise NutError(PROTOCOL_ERROR, detail=f"push batch larger than {MAX_BATCH_BYTES} bytes")
    finally:
        writer.close()
