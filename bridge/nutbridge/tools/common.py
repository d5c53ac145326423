"""Shared pieces of the NUT-compatible tools: compatibility profile, option parsing,
UPS name splitting, connecting, prompts.

Output must match NUT's tools byte for byte, except the version banner, which names
nutbridge honestly. NUT 2.8.0 and 2.8.5 differ in help texts, in which tools send
STARTTLS, in -j and in a few messages; ``NUTBRIDGE_NUT_COMPAT=2.8.0`` selects 2.8.0
behaviour, the default is the latest supported, 2.8.5.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .. import __version__
from ..client import NutClient, NutError, TLSMode, TLSOptions
from ..compat import COMPAT_ENV, SUPPORTED, nut_compat

T = TypeVar("T")
__all__ = ["COMPAT_ENV", "SUPPORTED"]
DEFAULT_PORT = 3493


@dataclass(frozen=True)
class Profile:
    version: str

    @property
    def new(self) -> bool:
        """2.8.3+ behaviour (help texts, STARTTLS in upscmd/upsrw, -j, -d...)."""
        return self.version != "2.8.0"

    def banner(self, tool: str) -> str:
        # Upstream prints "Network UPS Tools <tool> <version>"; we say who we are.
        return f"Network UPS Tools {tool} (nutbridge {__version__}, NUT {self.version} compatible)"

    def quiet_ssl_init(self) -> bool:
        # 2.8.0 always prints the NSS init notice; 2.8.5 honours NUT_QUIET_INIT_SSL.
        if not self.new:
            return False
        return os.environ.get("NUT_QUIET_INIT_SSL", "").lower() in ("true", "1")


def profile() -> Profile:
    return Profile(nut_compat())


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


class Usage(Exception):
    """An option error already reported; the caller decides what follows."""


def getopt(prog: str, argv: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str], bool]:
    """GNU getopt with argument permutation and glibc's messages.

    Returns (options, operands, had_error); invalid options yield ('?', '').
    """
    opts: list[tuple[str, str]] = []
    rest: list[str] = []
    bad = False
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            rest.extend(argv[i:])
            break
        if not a.startswith("-") or a == "-":
            rest.append(a)
            continue
        j = 1
        while j < len(a):
            c = a[j]
            j += 1
            pos = spec.find(c)
            if c == ":" or pos < 0:
                err(f"{prog}: invalid option -- '{c}'\n")
                opts.append(("?", c))
                bad = True
                continue
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                if j < len(a):
                    opts.append((c, a[j:]))
                elif i < len(argv):
                    opts.append((c, argv[i]))
                    i += 1
                else:
                    err(f"{prog}: option requires an argument -- '{c}'\n")
                    opts.append(("?", c))
                    bad = True
                break
            opts.append((c, ""))
    return opts, rest, bad


@dataclass(frozen=True)
class Target:
    ups: str
    host: str
    port: int


INVALID_UPS = "invalid UPS definition.\nRequired format: upsname[@hostname[:port]]"
# upscmd and upsrw print it on one line.
INVALID_UPS_ONELINE = "invalid UPS definition.  Required format: upsname[@hostname[:port]]"


def split_hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [v6addr]:port
        host, _, tail = text[1:].partition("]")
        return host, _port(tail[1:]) if tail.startswith(":") else DEFAULT_PORT
    host, sep, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return (host, _port(port)) if sep else (text, DEFAULT_PORT)


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def split_ups(spec: str | None, prof: Profile) -> Target | None:
    """Split 'ups[@host[:port]]'; on failure print NUT's diagnostics and return None.

    The caller prints ``Error: invalid UPS definition...`` in its own way.
    """
    if not spec:
        return None
    ups, at, hostport = spec.partition("@")
    if at and not hostport:
        if prof.new:
            err("upscli_splitname: got the @ separator and then an empty hostname[:port] string\n")
        else:
            err("upscli_splitaddr: can't parse empty string\n")
        return None
    if not ups and prof.new:
        err("upscli_splitname: got empty upsname string\n")
        return None
    host, port = split_hostport(hostport) if at else ("localhost", DEFAULT_PORT)
    return Target(ups, host, port)


def tool_tls(tryssl: bool) -> TLSOptions:
    """NUT's tools try STARTTLS without verifying the certificate (no CERTVERIFY)."""
    if not tryssl:
        return TLSOptions(TLSMode.OFF)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return TLSOptions(TLSMode.TRY, context=ctx)


_ssl_noticed = False


async def connect(host: str, port: int, prof: Profile, tryssl: bool,
                  timeout: float = 10.0) -> NutClient:
    """Connect like upscli_connect; prints the NSS init notice as NUT's clients do
    (once per process, after the first successful TCP connect with TRYSSL)."""
    global _ssl_noticed
    client = NutClient(host, port, timeout=timeout, tls=tool_tls(tryssl))
    await client.connect()
    if tryssl:
        if not _ssl_noticed and not prof.quiet_ssl_init():
            err("Init SSL without certificate database\n")
        _ssl_noticed = True
    return client


def run(coro: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(_guard(coro))
    except KeyboardInterrupt:
        return 1


async def _guard(coro: Callable[[], Awaitable[int]]) -> int:
    return await coro()


def default_username() -> str:
    """NUT's prompt default: the login name of the effective uid."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


def read_line_stdin() -> str | None:
    """fgets() on stdin: the line without its newline, or None at EOF."""
    line = sys.stdin.readline()
    if not line:
        return None
    return line.rstrip("\n")


def getpass_prompt(prompt: str) -> str:
    """glibc getpass(): prompt and read from /dev/tty without echo, else stderr/stdin."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        err(prompt)
        line = sys.stdin.readline()
        return line.rstrip("\n")
    import termios

    with open(fd, "r+b", buffering=0) as tty:
        old = termios.tcgetattr(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~termios.ECHO
        try:
            tty.write(prompt.encode())
            termios.tcsetattr(fd, termios.TCSAFLUSH, new)
            data = b""
            while not data.endswith(b"\n"):
                ch = tty.read(1)
                if not ch:
                    break
                data += ch
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            tty.write(b"\n")
    return data.decode(errors="replace").rstrip("\n")


async def disconnect(client: NutClient) -> None:
    await client.close()


def error_line(exc: NutError) -> str:
    return f"Error: {exc.text}\n"
