#!/usr/bin/env python3
"""The language's ceiling for request/response: a bare uvloop server that answers
every request line with a fixed answer, parsing nothing.

    python benchmarks/ceiling.py PORT 'VAR ups ups.status "OL"'

benchmarks/run.py measures it beside the C upsd and the bridge: whatever Python
server does real work per request cannot be faster than this one on the same
machine, so "bridge / ceiling" says how much of the gap to C is the language's
fixed cost (event loop, syscalls through CPython) and how much is ours.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvloop


class Answer(asyncio.Protocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.t is not None
        self.t.write(self.answer * data.count(b"\n"))


async def main(port: int, answer: bytes) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Answer(answer), "127.0.0.1", port, backlog=1024,
                                   reuse_address=True)
    sys.stderr.write(f"ceiling: uvloop {uvloop.__version__} listening on 127.0.0.1:{port}\n")
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2].encode() + b"\n"))
