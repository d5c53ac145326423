"""NutClient: asyncio client for the NUT network protocol 1.3.

Requests are serialised with an asyncio.Lock, so one client can be shared by many
tasks. Answers are checked the way NUT's own client library checks them: a GET
answer must echo the query words (case-insensitively) and a LIST must open with
``BEGIN LIST <query>``, carry the query words on every item and end at
``END LIST``. Anything else raises ``NutError(PROTOCOL-ERROR)``.

Every answer is read by a reader of ``protocol/messages.py`` (next to the writer
the bridge's upsd uses for it); its ``MalformedAnswer`` becomes PROTOCOL-ERROR and
its ``ErrorAnswer`` a NutError with the server's code (an ``Err`` when the
vocabulary knows it, the text as sent otherwise).

Whatever the server sends, memory and time stay bounded: an answer line longer
than ``connection.MAX_LINE`` is a PROTOCOL-ERROR; a LIST must end within
``timeout`` seconds (TIMEOUT) and :data:`MAX_LIST_BYTES` (PROTOCOL-ERROR). Either
way the connection is dropped, since the rest of the answer would be out of step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ..protocol import messages
from ..protocol.errors import Err
from ..protocol.wire import request
from .connection import Connection
from .errors import (
    PROTOCOL_ERROR,
    SERVER_DISCONNECTED,
    TIMEOUT,
    TLS_ERROR,
    CertificateMismatch,
    NutError,
    TLSNotOffered,
)
from .tls import TLSMode, TLSOptions, fingerprint

DEFAULT_PORT = 3493
DEFAULT_TIMEOUT = 10.0
# NUT's client waits this long for "OK Goodbye" when disconnecting.
LOGOUT_TIMEOUT = 5.0
# A LIST answer larger than this (lines with their newlines) is refused: the biggest real
# ones (LIST VAR of a 48-outlet PDU, LIST EVENT 1000) are well under 1 MiB, and a server
# that never sends END LIST must not grow the client without limit.
MAX_LIST_BYTES = 1 << 20
# Requests that may be repeated on a new connection without side effects.
_RETRY_SAFE = {"GET": True, "LIST": True, "VER": True, "NETVER": True, "PROTVER": True, "HELP": True}

T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class Session:
    """What must be replayed on a new connection to restore this one."""

    username: str | None = None
    password: str | None = None
    login: str | None = None
    tracking: bool = False
    extra: list[str] = field(default_factory=list)


@dataclass
class _ListBudget:
    """What one LIST answer may still take: until ``deadline`` (loop time), this many bytes."""

    deadline: float
    bytes_left: int = MAX_LIST_BYTES


def _read(line: str, reader: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``reader(...)`` of protocol.messages, its errors as NutError about ``line``."""
    try:
        return reader(*args, **kwargs)
    except messages.ErrorAnswer as exc:
        raise NutError(exc.code, exc.extra, answer=line) from None
    except messages.MalformedAnswer as exc:
        raise NutError(PROTOCOL_ERROR, answer=line) from exc


def _split(line: str) -> tuple[str, ...]:
    return _read(line, messages.split, line)


def check_err(line: str) -> None:
    """Raise NutError for an ``ERR <code> [extra]`` answer."""
    _read(line, messages.check_err, line)


async def start_tls(conn: Connection, host: str, opts: TLSOptions, timeout: float) -> bool:
    """Send STARTTLS on a fresh plaintext connection and upgrade it as ``opts`` say.

    Returns False when the server declined and ``opts.mode`` is TRY (carry on in
    plaintext, as NUT's TRYSSL does); raises TLSNotOffered when it declined and TLS is
    required, NutError(TLS-ERROR) when the handshake fails, CertificateMismatch when
    the certificate is not the pinned one. Nothing but STARTTLS is sent before the
    certificate is accepted, so a caller may send credentials right after.
    """
    await conn.write(b"STARTTLS\n", timeout)
    line = await conn.readline(timeout)
    if not messages.parse_starttls(line):
        if opts.mode is TLSMode.TRY:
            return False
        try:
            check_err(line)
        except NutError as exc:
            raise TLSNotOffered(exc.code, exc.extra, answer=line) from None
        raise TLSNotOffered(PROTOCOL_ERROR, answer=line)
    ctx = opts.build_context()
    # the name to check the certificate against whenever the context checks one (the system
    # store without a pin checks it too: a context that checks names refuses to start without)
    hostname = host if ctx.check_hostname else None
    try:
        await conn.start_tls(ctx, hostname, timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise NutError(TLS_ERROR, detail=str(exc)) from exc
    der = conn.peer_cert_der()
    if not opts.check_pin(der):
        raise CertificateMismatch(fingerprint(der) if der else "")
    return True


class NutClient:
    """One connection to a upsd. Use ``async with NutClient(host) as c:``."""

    def __init__(self, host: str = "localhost", port: int = DEFAULT_PORT, *,
                 timeout: float = DEFAULT_TIMEOUT, tls: TLSOptions | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls_options = tls or TLSOptions()
        self.session = Session()
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    # -- connection -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def tls_active(self) -> bool:
        return self._conn is not None and self._conn.tls

    @property
    def peer_fingerprint(self) -> str | None:
        """SHA-256 fingerprint of the server's certificate while TLS is up, else None."""
        der = self._conn.peer_cert_der() if self._conn is not None and self._conn.tls else None
        return fingerprint(der) if der else None

    async def connect(self) -> None:
        async with self._lock:
            await self._connect()

    async def _connect(self) -> None:
        self._conn = await Connection.open(self.host, self.port, self.timeout)
        try:
            if self.tls_options.mode is not TLSMode.OFF:
                await self._starttls()
        except BaseException:
            await self._drop()
            raise

    async def _starttls(self) -> None:
        conn = self._require()
        try:
            await start_tls(conn, self.host, self.tls_options, self.timeout)
        except NutError as exc:
            if exc.disconnected or conn.closing:
                await self._drop()
            raise

    async def starttls(self) -> None:
        """Explicit STARTTLS on an open plaintext connection (mode REQUIRE semantics)."""
        async with self._lock:
            saved = self.tls_options
            self.tls_options = replace(saved, mode=TLSMode.REQUIRE)
            try:
                await self._starttls()
            finally:
                self.tls_options = saved

    async def close(self) -> None:
        """Send LOGOUT, wait briefly for the goodbye, and close."""
        async with self._lock:
            if self._conn is None:
                return
            try:
                await self._conn.write(b"LOGOUT\n", LOGOUT_TIMEOUT)
                await self._conn.readline(LOGOUT_TIMEOUT)
            except NutError:
                pass
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def __aenter__(self) -> NutClient:
        await self.connect()
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _require(self) -> Connection:
        if self._conn is None:
            raise NutError(SERVER_DISCONNECTED)
        return self._conn

    # -- transport primitives (lock held by caller) -----------------------------

    async def _exchange(self, data: bytes) -> str:
        conn = self._require()
        try:
            await conn.write(data, self.timeout)
            return await conn.readline(self.timeout)
        except NutError as exc:
            if exc.disconnected or conn.closing:
                await self._drop()
            raise

    async def _readline(self, timeout: float | None = None) -> str:
        conn = self._require()
        try:
            return await conn.readline(self.timeout if timeout is None else timeout)
        except NutError as exc:
            if exc.disconnected or conn.closing:
                await self._drop()
            raise

    def _list_budget(self) -> _ListBudget:
        return _ListBudget(asyncio.get_running_loop().time() + self.timeout)

    async def _list_line(self, budget: _ListBudget) -> str:
        """The next line of a LIST answer, within the LIST's time and size budget."""
        left = budget.deadline - asyncio.get_running_loop().time()
        if left <= 0:
            await self._drop()
            raise NutError(TIMEOUT, detail=f"LIST not complete after {self.timeout:g}s")
        line = await self._readline(left)
        budget.bytes_left -= len(line) + 1
        if budget.bytes_left < 0:
            await self._drop()
            raise NutError(PROTOCOL_ERROR, detail=f"LIST answer larger than {MAX_LIST_BYTES} bytes")
        return line

    async def _run(self, op: Callable[[NutClient], Awaitable[T]], retry: bool = False) -> T:
        """Run one request under the lock. ``retry`` marks requests that are safe
        to repeat on a new connection (ReconnectingClient uses it)."""
        async with self._lock:
            return await op(self)

    # -- generic requests -------------------------------------------------------

    async def raw(self, line: str) -> str:
        """Send one line exactly as given and return the answer line, ERR or not.

        Used by the tools, which must send the same bytes as NUT's tools do.
        """
        data = (line + "\n").encode("latin-1", "replace")

        async def op(c: NutClient) -> str:
            return await c._exchange(data)

        return await self._run(op)

    async def command(self, *words: str) -> str:
        """Send a command; return its answer line, raising NutError on ERR."""
        data = request(*words)

        async def op(c: NutClient) -> str:
            line = await c._exchange(data)
            check_err(line)
            return line

        return await self._run(op, _RETRY_SAFE.get(words[0].upper(), False))

    async def get(self, *query: str) -> tuple[str, ...]:
        """``GET <query>``; returns the answer words after the echoed query."""
        _, words = await self._get(query)
        return words[len(query):]

    async def _get(self, query: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        """The answer line to ``GET <query>`` and its words, checked to echo the query."""
        data = request("GET", *query)

        async def op(c: NutClient) -> tuple[str, tuple[str, ...]]:
            line = await c._exchange(data)
            check_err(line)
            words = _split(line)
            _read(line, messages.reply_tail, words, query)
            return line, words

        return await self._run(op, True)

    async def _get_as(self, reader: Callable[[tuple[str, ...]], T], *query: str) -> T:
        """``GET <query>`` read by one of protocol.messages' readers."""
        line, words = await self._get(query)
        return _read(line, reader, words)

    async def list_items(self, *query: str) -> list[tuple[str, ...]]:
        """``LIST <query>``; returns each item's words after the query words."""
        data = request("LIST", *query)

        async def op(c: NutClient) -> list[tuple[str, ...]]:
            budget = c._list_budget()
            first = await c._exchange(data)
            check_err(first)
            _read(first, messages.parse_list_begin, _split(first), query)
            items: list[tuple[str, ...]] = []
            while True:
                line = await c._list_line(budget)
                words = _split(line)
                if messages.is_list_end(words):
                    return items
                items.append(_read(line, messages.parse_list_item, words, query))

        return await self._run(op, True)

    # -- session commands ---------------------------------------------------------

    async def ver(self) -> str:
        return await self.command("VER")

    async def netver(self) -> str:
        """Protocol version: PROTVER (2.8.0+), falling back to NETVER."""
        try:
            return await self.command("PROTVER")
        except NutError as exc:
            if exc.local:
                raise
            return await self.command("NETVER")

    async def help(self) -> str:
        return await self.command("HELP")

    async def username(self, name: str) -> None:
        await self.command("USERNAME", name)
        self.session.username = name

    async def password(self, secret: str) -> None:
        await self.command("PASSWORD", secret)
        self.session.password = secret

    async def authenticate(self, name: str, secret: str) -> None:
        await self.username(name)
        await self.password(secret)

    async def login(self, ups: str) -> None:
        await self.command("LOGIN", ups)
        self.session.login = ups

    async def logout(self) -> str:
        """LOGOUT without closing locally; the server closes soon after."""
        line = await self.command("LOGOUT")
        self.session = Session()
        return line

    async def primary(self, ups: str) -> str:
        """PRIMARY, or MASTER on servers older than 2.8.0."""
        try:
            return await self.command("PRIMARY", ups)
        except NutError as exc:
            if exc.code != Err.UNKNOWN_COMMAND:
                raise
            return await self.command("MASTER", ups)

    async def fsd(self, ups: str) -> str:
        return await self.command("FSD", ups)

    # -- GET ----------------------------------------------------------------------

    async def get_var(self, ups: str, var: str) -> str:
        return (await self._get_as(messages.parse_var, "VAR", ups, var))[2]

    async def get_type(self, ups: str, var: str) -> tuple[str, ...]:
        return (await self._get_as(messages.parse_vartype, "TYPE", ups, var))[2]

    async def get_desc(self, ups: str, var: str) -> str:
        return (await self._get_as(messages.parse_desc, "DESC", ups, var))[2]

    async def get_cmddesc(self, ups: str, cmd: str) -> str:
        return (await self._get_as(messages.parse_cmddesc, "CMDDESC", ups, cmd))[2]

    async def get_upsdesc(self, ups: str) -> str:
        return (await self._get_as(messages.parse_upsdesc, "UPSDESC", ups))[1]

    async def get_numlogins(self, ups: str) -> int:
        return (await self._get_as(messages.parse_numlogins, "NUMLOGINS", ups))[1]

    async def get_tracking(self) -> bool:
        """This connection's tracking flag (``GET TRACKING`` answers a bare ON/OFF)."""
        line = await self.command("GET", "TRACKING")
        return _read(line, messages.parse_tracking_flag, line)

    async def tracking_status(self, tracking_id: str) -> str:
        """``PENDING`` or ``SUCCESS``; an ERR result raises NutError."""
        line = await self.command("GET", "TRACKING", tracking_id)
        return _read(line, messages.parse_tracking_result, line)

    # -- LIST ---------------------------------------------------------------------

    async def list_ups(self) -> dict[str, str]:
        return {w[0]: w[1] for w in await self.list_items("UPS") if len(w) >= 2}

    async def list_var(self, ups: str) -> dict[str, str]:
        return {w[0]: w[1] for w in await self.list_items("VAR", ups) if len(w) >= 2}

    async def list_rw(self, ups: str) -> dict[str, str]:
        return {w[0]: w[1] for w in await self.list_items("RW", ups) if len(w) >= 2}

    async def list_cmd(self, ups: str) -> list[str]:
        return [w[0] for w in await self.list_items("CMD", ups) if w]

    async def list_enum(self, ups: str, var: str) -> list[str]:
        return [w[0] for w in await self.list_items("ENUM", ups, var) if w]

    async def list_range(self, ups: str, var: str) -> list[tuple[str, str]]:
        return [(w[0], w[1]) for w in await self.list_items("RANGE", ups, var) if len(w) >= 2]

    async def list_client(self, ups: str) -> list[str]:
        return [w[0] for w in await self.list_items("CLIENT", ups) if w]

    async def list_events(self, ups: str | None = None, count: int | None = None) -> list[dict[str, Any]]:
        """The event history of a NUT Bridge (``LIST EVENT``, docs/events.md), oldest first.

        ``ups`` None: every UPS and the bridge's own events; ``count``: the newest
        that many (the bridge's default is 100, its maximum 1000). Servers without
        the extension (upsd answers ``ERR INVALID-ARGUMENT`` to a LIST type it does
        not know) raise NutError with code ``UNKNOWN-COMMAND``.
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        name = ups or "*"
        head = ("EVENT", name)
        data = request("LIST", *head, *(() if count is None else (str(count),)))

        async def op(c: NutClient) -> list[dict[str, Any]]:
            budget = c._list_budget()
            first = await c._exchange(data)
            refused = messages.parse_err(first)
            if refused in (messages.ErrReply(Err.INVALID_ARGUMENT), messages.ErrReply(Err.UNKNOWN_COMMAND)):
                # our request is well-formed: the server does not know LIST EVENT
                raise NutError(Err.UNKNOWN_COMMAND, answer=first)
            check_err(first)
            _read(first, messages.parse_list_begin, _split(first), head)
            events: list[dict[str, Any]] = []
            while True:
                line = await c._list_line(budget)
                words = _split(line)
                if messages.is_list_end(words):
                    return events
                events.append(_read(line, messages.parse_event_item, words, name))

        return await self._run(op, True)

    # -- SET / INSTCMD / tracking -----------------------------------------------------

    async def set_tracking(self, on: bool) -> None:
        await self.command("SET", "TRACKING", "ON" if on else "OFF")
        self.session.tracking = on

    async def set_var(self, ups: str, var: str, value: str) -> str | None:
        """SET VAR; returns the tracking id when tracking is on."""
        return _tracking_id(await self.command("SET", "VAR", ups, var, value))

    async def instcmd(self, ups: str, cmd: str, param: str | None = None) -> str | None:
        """INSTCMD with an optional parameter; returns the tracking id if any."""
        words = ("INSTCMD", ups, cmd) if param is None else ("INSTCMD", ups, cmd, param)
        return _tracking_id(await self.command(*words))

    async def wait_tracking(self, tracking_id: str, timeout: float = 10.0,
                            interval: float = 1.0) -> str:
        """Poll until the driver answered; returns ``SUCCESS`` or raises NutError
        with the result code (UNKNOWN, INVALID-ARGUMENT, FAILED). Raises
        TimeoutError when still PENDING after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.tracking_status(tracking_id)
            if status != "PENDING":
                return status
            if loop.time() + interval > deadline:
                raise TimeoutError(f"tracking {tracking_id} still pending")
            await asyncio.sleep(interval)


def _tracking_id(line: str) -> str | None:
    return _read(line, messages.parse_ok, line)
