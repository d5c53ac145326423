"""What upscmd and upsrw share: prompts, login, sending the change and -w tracking.

NUT's tools send USERNAME/PASSWORD/INSTCMD lines unquoted and ignore the answers
to USERNAME and PASSWORD; we send the same bytes so the server answers the same.
"""

from __future__ import annotations

import asyncio
import os

from ..client import NutClient, NutError
from .common import Profile, default_username, err, getpass_prompt, out, read_line_stdin

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
