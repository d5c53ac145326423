"""The bridge's persistent state directory and its stable server id.

Where: ``--state-dir`` if given, else ``$STATE_DIRECTORY`` (systemd's
``StateDirectory=``), else ``/var/lib/nut-bridge`` when it exists or can be created
and is writable, else ``$XDG_STATE_HOME/nut-bridge`` (``~/.local/state/nut-bridge``).
Nothing is resolved or created until something asks for it (the event history, the
server id for zeroconf).

A state directory that cannot be written never stops the bridge: one warning is
logged, and the server id is then derived from the machine id and the
configuration directory, so it still stays the same across restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import uuid
from functools import cached_property
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_STATE_DIR = Path("/var/lib/nut-bridge")
SERVER_ID_FILE = "server-id"


def _candidates(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    if systemd := os.environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when several are configured
        return [Path(systemd.split(":")[0])]
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [SYSTEM_STATE_DIR, Path(xdg) / "nut-bridge"]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            if text := Path(p).read_text().strip():
                return text
        except OSError:
            pass
    return socket.gethostname()


class StateDir:
    """Lazily resolved state directory (``path`` is None when none is writable)."""

    def __init__(self, explicit: Path | None = None, confdir: Path | None = None) -> None:
        self.explicit = explicit
        self.confdir = confdir
        self._warned = False

    def _warn(self, msg: str, *args: object) -> None:
        if not self._warned:
            self._warned = True
            log.warning(msg, *args)

    @cached_property
    def path(self) -> Path | None:
        candidates = _candidates(self.explicit)
        for p in candidates:
            if _writable(p):
                return p
        self._warn("no writable state directory (tried %s; set one with --state-dir): "
                   "state is not kept", ", ".join(map(str, candidates)))
        return None

    @cached_property
    def server_id(self) -> str:
        """32 hex digits, created once (uuid4) and kept in ``<state dir>/server-id``."""
        if self.path is not None:
            f = self.path / SERVER_ID_FILE
            try:
                text = f.read_text().strip().lower()
                if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
                    return text
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._warn("cannot read %s: %s", f, exc.strerror or exc)
            new = uuid.uuid4().hex
            tmp = f.with_name(f".{SERVER_ID_FILE}.{os.getpid()}")
            try:
                tmp.write_text(new + "\n")
                os.replace(tmp, f)
                return new
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                self._warn("cannot write %s (%s): using an id derived from the machine id",
                           f, exc.strerror or exc)
        # Deterministic: the same machine and configuration give the same id.
        seed = f"{_machine_id()}\0{self.confdir.resolve() if self.confdir else '<embedded>'}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]
