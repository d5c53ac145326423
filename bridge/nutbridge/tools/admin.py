"""What upscmd and upsrw share: their common options, connecting to the UPS, prompts,
login, sending the change and -w tracking.

NUT's tools send USERNAME/PASSWORD/INSTCMD lines unquoted and ignore the answers
to USERNAME and PASSWORD; we send the same bytes so the server answers the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..client import NutClient, NutError
from .common import (
    INVALID_UPS_ONELINE,
    Profile,
    connect,
    default_username,
    err,
    getpass_prompt,
    out,
    read_line_stdin,
    run,
    split_ups,
)

T = TypeVar("T")
DEFAULT_TRACKING_TIMEOUT = 10
_TRACKING_ID_LEN = 36

OK_WARNING = (
    "WARNING: 'OK' only means the NUT data server accepted\n"
    "the request as valid, but as we did not wait for result,\n"
    "we do not know if it was handled in fact.\n"
    "You can export NUT_QUIET_OK_NOTRACKING=true to hide this message,\n"
    "or use -w [-t SEC] option(s) to track the actual outcome.\n"
)


class Fatal(Exception):
    """Print this message on stderr and exit 1 (NUT's fatalx)."""


@dataclass
class AdminOptions:
    """The options upscmd and upsrw both take: -u -p -w -t and (2.8.5) -W."""

    user: str | None = None
    password: str | None = None
    wait: bool = False
    timeout: float = float(DEFAULT_TRACKING_TIMEOUT)
    net_timeout: float = 10.0

    def take(self, option: str, value: str) -> None:
        """Apply one parsed option; the tool's own options are not seen here."""
        if option == "u":
            self.user = value
        elif option == "p":
            self.password = value
        elif option == "w":
            self.wait = True
        elif option == "t":
            self.timeout = parse_timeout(value)
        elif option == "W":
            self.net_timeout = parse_timeout(value)


async def list_or_fatal(query: Awaitable[T]) -> T:
    """A LIST query's answer; an ERR becomes the tools' message (a server without the
    query is "too old")."""
    try:
        return await query
    except NutError as exc:
        if exc.code == "UNKNOWN-COMMAND":
            raise Fatal("Error: upsd is too old to support this query") from exc
        raise Fatal(f"Error: {exc.text}") from exc


def run_on_ups(spec: str, prof: Profile, opts: AdminOptions,
               body: Callable[[NutClient, str], Awaitable[int]]) -> int:
    """Connect to the UPS ``spec`` names and run ``body(client, upsname)``; the exit code.

    A :class:`Fatal` raised on the way is printed on stderr and exits 1, as NUT's fatalx."""

    async def go() -> int:
        t = split_ups(spec, prof)
        if t is None:
            raise Fatal(f"Error: {INVALID_UPS_ONELINE}")
        try:
            c = await connect(t.host, t.port, prof, tryssl=prof.new, timeout=opts.net_timeout)
        except NutError as exc:
            raise Fatal(f"Error: {exc.text}") from exc
        try:
            return await body(c, t.ups)
        finally:
            await c.close()

    async def guarded() -> int:
        try:
            return await go()
        except Fatal as exc:
            err(f"{exc}\n")
            return 1

    return run(guarded)


async def login_and_act(c: NutClient, prof: Profile, opts: AdminOptions, line: str, failed: str, *,
                        eof_is_fatal: bool) -> int:
    """Ask for the missing credentials, log in, send ``line`` (SET VAR / INSTCMD) and report
    like the tool does; the exit code. ``failed`` starts the message of a refused change."""
    name = ask_username(opts.user, eof_is_fatal=eof_is_fatal)
    secret = ask_password(opts.password)
    await login(c, name, secret)
    return await act(c, prof, line, opts.wait, opts.timeout, failed)


def ask_username(user: str | None, eof_is_fatal: bool) -> str:
    if user is not None:
        return user
    default = default_username()
    out(f"Username ({default}): ")
    line = read_line_stdin()
    if line is None:
        if eof_is_fatal:
            raise Fatal("Error reading from stdin!")
        return default
    return line or default


def ask_password(password: str | None) -> str:
    return password if password is not None else getpass_prompt("Password: ")


async def login(c: NutClient, user: str, password: str) -> None:
    # NUT only checks that an answer came; an ERR here shows up at the action.
    for line in (f"USERNAME {user}", f"PASSWORD {password}"):
        try:
            await c.raw(line)
        except NutError as exc:
            what = "username" if line.startswith("USERNAME") else "password"
            raise Fatal(f"Set {what} failed: {exc.text}") from exc


async def act(c: NutClient, prof: Profile, line: str, wait: bool, timeout: float,
              failed: str) -> int:
    """Send SET VAR/INSTCMD; report like upscmd/upsrw. Returns the exit code."""
    if wait:
        try:
            ans = await c.raw("SET TRACKING ON")
        except NutError as exc:
            raise Fatal(f"Can't enable tracking: {exc.text}") from exc
        if not ans.startswith("OK"):
            raise Fatal(f"Unexpected response from upsd: {ans}")
    try:
        ans = await c.raw(line)
    except NutError as exc:
        raise Fatal(f"{failed}: {exc.text}") from exc
    if not ans.startswith("OK"):
        raise Fatal(f"Unexpected response from upsd: {ans}")
    if not wait:
        err(ans + "\n")
        quiet = os.environ.get("NUT_QUIET_OK_NOTRACKING", "").lower() in ("true", "1")
        if prof.new and not quiet:
            err(OK_WARNING)
        return 0
    if len(ans) != len("OK TRACKING ") + _TRACKING_ID_LEN:
        raise Fatal(f"Unexpected response from upsd: {ans}")
    tracking_id = ans[len("OK TRACKING "):]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            status = await c.raw(f"GET TRACKING {tracking_id}")
        except NutError as exc:
            raise Fatal(f"Can't receive status tracking information: {exc.text}") from exc
        if status != "PENDING":
            err(status + "\n")
            return 0
        if loop.time() >= deadline:
            raise Fatal("Can't receive status tracking information: timeout")
        await asyncio.sleep(1)


def parse_timeout(text: str) -> float:
    try:
        return float(int(text))
    except ValueError:
        return float(DEFAULT_TRACKING_TIMEOUT)
