"""Run our drivers as NUT driver processes (``nutbridge driver``) for tests, and talk to
driver sockets (ours or a C driver's) as upsd or upsdrvctl would.

* :class:`DriverProcess`: ``python -m nutbridge driver -a <ups> -F -u root`` (or, with
  ``link``, a link named like the driver, as upsdrvctl runs it) on a
  :class:`~tests.support.realnut.NutConfig`; stopped with SIGTERM on exit, which must end
  in exit code 0 with the socket gone.
* :func:`c_upsd_over_ours`: a C upsd (``realnut.c_upsd``) serving our driver processes, one
  per section of the config.
* :func:`install_links`: a ``driverpath`` whose entries are links to this venv's
  ``nutbridge`` script, named like NUT's driver binaries.
* :class:`SockPeer`: a raw client of a driver socket, with the sans-IO reader of upsd's end.
* :func:`pipeline`: many requests to a upsd on one connection, answered up to a sentinel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from nutbridge.protocol import sock

from . import realnut
from .realnut import NutConfig

SCRIPT = Path(sys.executable).parent / "nutbridge"  # this venv's console script


def env(cfg: NutConfig, **extra: str) -> dict[str, str]:
    """The config's NUT_* environment, with our package importable."""
    e = cfg.env()
    e["PYTHONPATH"] = str(realnut.REPO / "bridge") + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def socket_path(cfg: NutConfig, ups: str) -> Path:
    return cfg.run / f"{cfg.ups[ups]['driver']}-{ups}"


def install_links(driverpath: Path, names: Iterable[str]) -> Path:
    """``driverpath/<name>`` -> this venv's ``nutbridge`` script, for each name."""
    realnut.require_path(SCRIPT, "the nutbridge console script of this venv (pip install -e .)")
    driverpath.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = driverpath / name
        if not link.exists():
            link.symlink_to(SCRIPT)
    return driverpath


class DriverProcess(realnut.ChildProcess):
    """One ``nutbridge driver`` process in the foreground (see the module docstring)."""

    def __init__(self, cfg: NutConfig, ups: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.cfg = cfg
        self.ups = ups
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def start(cls, cfg: NutConfig, ups: str, *args: str, link: Path | None = None,
              extra_env: dict[str, str] | None = None, timeout: float = 20.0,
              write: bool = True) -> DriverProcess:
        """Start and wait for the socket; ``write=False``: the config files are already there."""
        if write:
            cfg.write()
        log_path = cfg.run / f"nutbridge-driver-{ups}.log"
        argv = ([str(link)] if link is not None
                else [sys.executable, "-m", "nutbridge", "driver"]) + ["-a", ups, "-F", "-u", "root", *args]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, env=env(cfg, **(extra_env or {})), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        self = cls(cfg, ups, proc, log_path)
        path = socket_path(cfg, ups)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"driver for [{ups}] did not start (rc {proc.returncode}):\n{self.log()}")
            time.sleep(0.02)
        return self

    @property
    def socket(self) -> Path:
        return socket_path(self.cfg, self.ups)

    def __exit__(self, *exc: object) -> None:
        rc = self.stop()
        assert rc == 0, f"driver [{self.ups}] exited with {rc}:\n{self.log()[-3000:]}"
        assert not self.socket.exists(), "the driver left its socket behind"


@contextmanager
def c_upsd_over_ours(cfg: NutConfig, *args: str, wait_ready: bool = True) -> Iterator[list[DriverProcess]]:
    """Our driver for each section of ``cfg``, then a C upsd serving them."""
    with ExitStack() as stack:
        procs = [stack.enter_context(DriverProcess.start(cfg, ups, *args)) for ups in cfg.ups]
        stack.enter_context(realnut.c_upsd(cfg, drivers=False, wait_ready=False))
        if wait_ready:
            realnut.wait_ready_many(cfg.port, list(cfg.ups), timeout=30)
        yield procs


class SockPeer:
    """A client of a driver socket (``with SockPeer(path) as p: p.send(b"DUMPALL\\n")``)."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(str(path))
        self.reader = sock.DriverReader()
        self.raw = b""  # everything received

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def read_quiet(self, quiet: float = 0.5, first: float = 3.0) -> bytes:
        """What arrives until the peer is silent for ``quiet`` s (``first`` for the first byte)."""
        got = b""
        self.s.settimeout(first)
        while True:
            try:
                chunk = self.s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
            self.s.settimeout(quiet)
        self.raw += got
        return got

    def read_until(self, end: bytes, timeout: float = 10.0) -> bytes:
        """Up to and including the first line equal to ``end`` (e.g. ``b"DUMPDONE\\n"``)."""
        got = b""
        deadline = time.monotonic() + timeout
        while not (got.startswith(end) or b"\n" + end in got):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {end!r} in {got[-500:]!r}")
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(f"closed before {end!r}: {got[-500:]!r}")
            got += chunk
        self.raw += got
        return got

    def close(self) -> None:
        self.s.close()

    def __enter__(self) -> SockPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SENTINEL = "GET VAR no.such.ups.sentinel x"
_SENTINEL_ANSWER = b"ERR UNKNOWN-UPS\n"


def pipeline(port: int, lines: list[str], timeout: float = 30.0) -> bytes:
    """Send all ``lines`` on one connection to a upsd and return the answers (up to the
    answer of a final request for an unknown UPS, which both upsds answer alike)."""
    payload = "".join(ln + "\n" for ln in [*lines, SENTINEL]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while not buf.endswith(_SENTINEL_ANSWER):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    return buf[: -len(_SENTINEL_ANSWER)]
