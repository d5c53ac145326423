"""The bridge's persistent state directory (one per instance) and its stable server id.

What lives there: ``server-id``, the event history (``events.jsonl``), the generated TLS
certificate (``tls/nutbridge.pem``). Two bridges with different configurations must never
share it (the second one would find the history locked and keep events in memory only), so
the directory follows the configuration. The first rule that applies decides:

1. ``--state-dir DIR`` (the HA app passes ``/data``);
2. ``<STATEPATH>/nut-bridge`` when upsd.conf has ``STATEPATH`` or ``$NUT_STATEPATH`` is set:
   NUT's own per-instance setting (where the drivers' sockets are). A subdirectory, not
   STATEPATH itself: that directory belongs to NUT (driver sockets ``<driver>-<ups>``, pid
   files, group-readable by ``nut``); ours holds a private key (0700) and is ours to chown;
3. ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``);
4. derived from the configuration directory: ``/var/lib/nut-bridge`` for ``/etc/nut`` and the
   embedded default (the place every existing install has used, so its server id keeps its
   meaning), ``/var/lib/nut-bridge/config/<name>-<hash>`` for any other one (hash of the
   resolved path); ``$XDG_STATE_HOME/nut-bridge[/config/<name>-<hash>]``
   (``~/.local/state``) when /var/lib/nut-bridge cannot be created or written.

Nothing is resolved or created until something asks for it (the event history, the server
id, the certificate). A state directory that cannot be written never stops the bridge: one
warning, and the server id is then derived from the machine id and the configuration
directory, so it still stays the same across restarts. See docs/discovery.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import uuid
from functools import cached_property
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_STATE_DIR = Path("/var/lib/nut-bridge")
#: the configuration directory whose state is SYSTEM_STATE_DIR itself (Debian's, and NUT's default)
SYSTEM_CONF_DIR = Path("/etc/nut")
SERVER_ID_FILE = "server-id"
SUBDIR = "nut-bridge"  # beneath STATEPATH and $XDG_STATE_HOME
PER_CONFIG = "config"  # beneath the derived default: one directory per other config dir
# emptied at boot (FHS): the id and the certificate would change with every reboot
_VOLATILE = (Path("/run"), Path("/var/run"), Path("/dev/shm"))


def is_system_config(confdir: Path | None) -> bool:
    """The embedded default (None) or /etc/nut: the configurations of SYSTEM_STATE_DIR."""
    if confdir is None:
        return True
    try:
        return confdir.resolve() == SYSTEM_CONF_DIR.resolve()
    except OSError:
        return False


def config_key(confdir: Path) -> str:
    """``<name>-<12 hex>``: a directory name of its own for each resolved config directory
    (the name, e.g. ``nut-lab``, only helps a human find it)."""
    resolved = confdir.resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name).strip(".")[:40] or "root"
    return f"{name}-{digest}"


def _statepath(statepath: str | None) -> tuple[str, str] | None:
    """(directory, where it came from): upsd.conf's STATEPATH wins over $NUT_STATEPATH, as for
    the C upsd; NUT's compiled-in default (/run/nut) does not count: it is not a choice."""
    if statepath:
        return statepath, "upsd.conf STATEPATH"
    if env := os.environ.get("NUT_STATEPATH"):
        return env, "$NUT_STATEPATH"
    return None


def resolve(explicit: Path | None, confdir: Path | None = None,
            statepath: str | None = None) -> tuple[list[Path], str]:
    """The candidate directories of the first rule that applies, in order, and that rule."""
    if explicit is not None:
        return [explicit], "--state-dir"
    if sp := _statepath(statepath):
        return [Path(os.path.abspath(sp[0])) / SUBDIR], sp[1]
    if systemd := os.environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when several are configured
        return [Path(systemd.split(":")[0])], "$STATE_DIRECTORY"
    xdg = Path(os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")) / SUBDIR
    if is_system_config(confdir):
        return [SYSTEM_STATE_DIR, xdg], "default"
    assert confdir is not None
    key = config_key(confdir)
    return [SYSTEM_STATE_DIR / PER_CONFIG / key, xdg / PER_CONFIG / key], f"the config dir {confdir}"


def _candidates(explicit: Path | None, confdir: Path | None = None,
                statepath: str | None = None) -> list[Path]:
    """Where the state directory may be (for readers: ``nutbridge events``, killpower)."""
    return resolve(explicit, confdir, statepath)[0]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _valid_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            if text := Path(p).read_text().strip():
                return text
        except OSError:
            pass
    return socket.gethostname()


class StateDir:
    """Lazily resolved state directory (``path`` is None when none is writable).

    ``explicit``: ``--state-dir``; ``confdir``: the configuration directory (None: the
    embedded default); ``statepath``: upsd.conf's STATEPATH."""

    def __init__(self, explicit: Path | None = None, confdir: Path | None = None,
                 statepath: str | None = None) -> None:
        self.explicit = explicit
        self.confdir = confdir
        self.statepath = statepath
        self._warned = False

    def _warn(self, msg: str, *args: object) -> None:
        if not self._warned:
            self._warned = True
            log.warning(msg, *args)

    @cached_property
    def path(self) -> Path | None:
        candidates, why = resolve(self.explicit, self.confdir, self.statepath)
        for p in candidates:
            if _writable(p):
                log.info("state directory %s (%s)", p, why)
                if any(p.is_relative_to(v) for v in _VOLATILE):
                    log.warning("state directory %s is emptied at every boot: the server id and the "
                                "generated TLS certificate will change (use --state-dir)", p)
                return p
        self._warn("no writable state directory (tried %s; set one with --state-dir): "
                   "state is not kept", ", ".join(map(str, candidates)))
        return None

    def _inherited_id(self) -> str | None:
        """/etc/nut's id in SYSTEM_STATE_DIR, for /etc/nut's state moved elsewhere by STATEPATH or
        $STATE_DIRECTORY: the bridge stays the same server to its clients."""
        if self.explicit is not None or not is_system_config(self.confdir) or self.path == SYSTEM_STATE_DIR:
            return None
        try:
            text = (SYSTEM_STATE_DIR / SERVER_ID_FILE).read_text().strip().lower()
        except OSError:
            return None
        return text if _valid_id(text) else None

    @cached_property
    def server_id(self) -> str:
        """32 hex digits, created once (uuid4) and kept in ``<state dir>/server-id``."""
        if self.path is not None:
            f = self.path / SERVER_ID_FILE
            try:
                text = f.read_text().strip().lower()
                if _valid_id(text):
                    return text
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._warn("cannot read %s: %s", f, exc.strerror or exc)
            new = self._inherited_id() or uuid.uuid4().hex
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
