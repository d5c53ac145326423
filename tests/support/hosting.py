"""The C upsd and ``nutbridge serve`` side by side, each with the same NUT C drivers.

For the tests of the external-driver family (drivers/external/): the bridge hosts Debian's C
drivers (``nutbridge_hosted = ...`` in ups.conf, or automatically for a driver it has no
implementation of) while the C upsd serves the same C drivers started as
:func:`realnut.c_upsd` starts them; what NUT's client tools print about each UPS must then be the
same bytes on both sides::

    from tests.support import hosting, realnut

    c = hosting.HostedConfig(root / "c")
    b = hosting.HostedConfig(root / "b", globals_text="nutbridge_hosted = *\\n")
    for cfg in (c, b):
        cfg.add_ups("u1", driver="dummy-ups", port="/path/u1.dev")
    with hosting.side_by_side(c, b, ["u1"]) as bridge:
        assert hosting.views(b.port, "u1") == hosting.views(c.port, "u1")

* :class:`HostedConfig`: a :class:`realnut.NutConfig` whose ups.conf starts with global lines;
* :func:`views` (one UPS) and :func:`views_many` (many, in parallel): ``upsc``, ``upsrw`` and
  ``upscmd -l`` as a user sees them, with what depends on the moment rather than on the data
  masked (2.8.5's ``driver.state`` churn; ``synchronous = auto`` turning ``yes``) and any
  other normalisation passed in by the caller (each one named where it is used);
* :class:`Session`: one NUT network session, a request and its answer line at a time, and
  :meth:`Session.tracked` for an INSTCMD/SET followed up to its TRACKING result;
* :func:`driver_children` / :func:`hosted_pid` / :func:`dead` / :func:`gone`: the bridge's
  driver processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import difflib
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import realnut
from .realnut import NutConfig

LOGIN = ("USERNAME admin", "PASSWORD s3cr3t")  # realnut.DEFAULT_USERS' admin: SET and all INSTCMDs


@dataclass
class HostedConfig(NutConfig):
    """A NutConfig whose ups.conf starts with global lines (``nutbridge_hosted = ...``); the C
    drivers read the same file and ignore the bridge's globals."""

    globals_text: str = ""

    def write(self) -> Path:
        etc = super().write()
        conf = etc / "ups.conf"
        conf.write_text(self.globals_text + conf.read_text())
        return etc


def client(*argv: str) -> str:
    """What a NUT client tool prints: stdout, then stderr without 2.8.0's SSL notice."""
    p = realnut.run_tool([realnut.require_client(argv[0]), *argv[1:]], env={"LANG": "C"})
    return p.stdout.decode() + p.stderr.decode().replace("Init SSL without certificate database\n", "")


#: NUT 2.8.5's C drivers flip ``driver.state`` between ``quiet`` and ``updateinfo`` around
#: each poll; what a client reads depends on the moment it asks
DRIVER_STATE = re.compile(r"^driver\.state: .*$", re.M)
#: a C driver in its default ``synchronous = auto`` mode whose server falls behind reading it
#: (its socket full: EAGAIN, typically during the dump while the server takes in many) drops
#: that connection, switches to ``yes`` for the next ones and publishes it; which server falls
#: behind, if any, depends on the load of the moment. An explicit ``synchronous`` is not masked.
SYNCHRONOUS_AUTO = re.compile(r"^driver\.parameter\.synchronous: (?:auto|yes)$", re.M)


def views(port: int, ups: str, replace: Mapping[str, str] | None = None) -> str:
    """``upsc``, ``upsrw`` and ``upscmd -l`` of one UPS, joined; :data:`DRIVER_STATE` and
    :data:`SYNCHRONOUS_AUTO` masked, then each ``replace`` key (an exact line) replaced by its
    value, each of which must be there."""
    target = f"{ups}@127.0.0.1:{port}"
    out = "\n".join([client("upsc", target), client("upsrw", target), client("upscmd", "-l", target)])
    out = DRIVER_STATE.sub("driver.state: <state>", out)
    out = SYNCHRONOUS_AUTO.sub("driver.parameter.synchronous: <auto|yes>", out)
    for line, instead in (replace or {}).items():
        pattern = re.compile("^" + re.escape(line) + "$", re.M)
        assert pattern.search(out), f"{ups}: no line {line!r} to normalise in:\n{out[:2000]}"
        out = pattern.sub(instead.replace("\\", "\\\\"), out)
    return out


def views_many(port: int, names: Iterable[str], workers: int = 4) -> dict[str, str]:
    """:func:`views` of many UPSes, ``workers`` client runs at a time."""
    names = list(names)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(names, pool.map(lambda n: views(port, n), names), strict=True))


def difference(want: str, got: str, what: str = "") -> str:
    """A unified diff of two views (the C upsd's first), for assertion messages."""
    return what + "\n" + "".join(difflib.unified_diff(
        want.splitlines(True), got.splitlines(True), "C upsd", "nutbridge serve", n=1))


@contextlib.contextmanager
def side_by_side(c: NutConfig, b: NutConfig, names: list[str],
                 timeout: float = 60.0) -> Iterator[realnut.BridgeProcess]:
    """The C upsd with the C drivers of ``c`` and ``nutbridge serve`` on ``b``, started at the
    same time; yields once every UPS in ``names`` answers on both. Stops both on exit (the
    bridge must exit 0 on SIGTERM)."""
    with realnut.c_upsd(c, wait_ready=False), realnut.BridgeProcess.start(b) as bridge:
        try:
            realnut.wait_ready_many(c.port, names, timeout)
        except TimeoutError as exc:
            log = (c.run / "upsd.log").read_text(errors="replace")
            raise AssertionError(f"{exc}; C upsd log:\n{log[-4000:]}") from None
        try:
            realnut.wait_ready_many(b.port, names, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; bridge log:\n{bridge.log()[-4000:]}") from None
        yield bridge


class Session:
    """One NUT network session, a request and its answer line at a time."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def ask(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self.file.readline().decode().rstrip("\n")

    def login(self, tracking: bool = True) -> None:
        """As admin; with ``SET TRACKING ON`` (INSTCMD/SET then answer ``OK TRACKING <id>``)."""
        lines = [*LOGIN, *(["SET TRACKING ON"] if tracking else [])]
        answers = [self.ask(x) for x in lines]
        assert answers == ["OK"] * len(lines), answers

    def tracked(self, line: str, timeout: float = 30.0) -> tuple[str, str | None]:
        """Send an INSTCMD or SET; (its answer without the id, the TRACKING result or None
        when the server refused it outright)."""
        answer = self.ask(line)
        if not answer.startswith("OK TRACKING "):
            return answer, None
        tid = answer.split()[2]
        deadline = time.monotonic() + timeout
        while (result := self.ask(f"GET TRACKING {tid}")) == "PENDING":
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return "OK TRACKING", result

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def driver_children(parent: int) -> dict[int, list[str]]:
    """pid -> argv of ``parent``'s children."""
    out: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                argv = (stat.parent / "cmdline").read_bytes().decode().split("\0")
                out[int(stat.parent.name)] = argv
    return out


def hosted_pid(parent: int, ups: str) -> int:
    """The pid of the driver ``parent`` (a bridge) runs for ``ups`` (``<bin> -a <ups> ...``)."""
    pids = [p for p, argv in driver_children(parent).items() if argv[1:3] == ["-a", ups]]
    assert len(pids) == 1, driver_children(parent)
    return pids[0]


def dead(pid: int) -> bool:
    """Gone, or a zombie (its reaping is its parent's business)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def gone(pid: int) -> bool:
    """No such process, not even a zombie: it was reaped."""
    return not Path(f"/proc/{pid}").exists()
