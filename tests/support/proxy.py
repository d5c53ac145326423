"""A tiny TCP logging proxy for interop tests.

It sits between a NUT client and a NUT server, records every byte each side sent
(per connection, in order) and can optionally cut the server side after a number
of answer bytes, to simulate a server that drops the connection mid-answer.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from .realnut import free_port


@dataclass
class Conn:
    """One proxied connection: what the client sent and what the server answered."""

    client: bytearray = field(default_factory=bytearray)
    server: bytearray = field(default_factory=bytearray)
    events: list[tuple[str, bytes]] = field(default_factory=list)

    def requests(self) -> list[str]:
        return [ln for ln in self.client.decode("latin-1").split("\n") if ln]


class LoggingProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target>, logging all traffic."""

    def __init__(self, target: int, cut_after: int | None = None) -> None:
        self.target = target
        self.port = free_port()
        # Close the first connection after this many server bytes (None: never).
        self.cut_after = cut_after
        self.conns: list[Conn] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> LoggingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                cli, _ = self._sock.accept()
            except OSError:
                return
            conn = Conn()
            with self._lock:
                first = not self.conns
                self.conns.append(conn)
            try:
                srv = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                cli.close()
                continue
            cut = self.cut_after if first else None
            threading.Thread(target=self._pump, args=(cli, srv, conn, "C", None), daemon=True).start()
            threading.Thread(target=self._pump, args=(srv, cli, conn, "S", cut), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, conn: Conn, side: str,
              cut: int | None) -> None:
        buf = conn.client if side == "C" else conn.server
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if cut is not None and len(buf) + len(data) >= cut:
                    data = data[: cut - len(buf)]
                    with self._lock:
                        buf += data
                        conn.events.append((side, data))
                    dst.sendall(data)
                    break
                with self._lock:
                    buf += data
                    conn.events.append((side, data))
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def transcript(self) -> str:
        """All traffic as 'C> line' / 'S< line' text, connection by connection."""
        out: list[str] = []
        with self._lock:
            for i, conn in enumerate(self.conns):
                out.append(f"--- connection {i}")
                for side, data in conn.events:
                    arrow = "C> " if side == "C" else "S< "
                    out.extend(arrow + ln for ln in data.decode("latin-1").splitlines())
        return "\n".join(out)
