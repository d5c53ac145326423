"""Where a NUT C driver lives and how it is started, sans-IO (no process, no socket).

What upsdrvctl does before it execs a driver, in pieces the bridge can test without running one:

* :func:`find_driver`: the binary ``<driver>`` in ups.conf's global ``driverpath`` if set (as
  upsdrvctl), else in the places distributions put NUT's drivers (:data:`SEARCH_DIRS`);
* :func:`ups_conf_text`: the private ups.conf the hosted driver reads (``NUT_CONFPATH``): one
  section with the user's keys, the bridge's own ``_...`` keys left out, bare flags kept bare;
* :func:`socket_path`: ``<statepath>/<driver>-<ups>``, which a C driver refuses (exit 1) when it
  does not fit ``sockaddr_un.sun_path`` (108 bytes with the NUL);
* :func:`driver_argv` / :func:`driver_env`: ``<bin> -a <ups> -F -u <user>`` (``-k`` instead of
  ``-F`` for killpower) with NUT_STATEPATH/NUT_CONFPATH pointing at the private directory;
* :func:`attach_statepath`, :func:`maxage`: the config contract of drivers/external/__init__.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ...protocol.wire import quote  # a ups.conf value is quoted and escaped as on the wire

#: where distributions install NUT's drivers when ups.conf has no ``driverpath``: Debian/Ubuntu
#: (/lib/nut = /usr/lib/nut on merged /usr), Debian sid and Fedora (/usr/libexec/nut), Arch and
#: Alpine (/usr/lib/nut), NUT's own ``make install`` defaults (/usr/local/ups/bin) and others
SEARCH_DIRS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/usr/lib/nut/bin",
               "/usr/local/libexec/nut", "/usr/local/lib/nut", "/usr/local/ups/bin")

#: ``sockaddr_un.sun_path`` on Linux, including the terminating NUL
SUN_PATH_MAX = 108

DEFAULT_MAXAGE = 15
DEFAULT_STATEPATH = "/run/nut"
MODES = ("native", "hosted", "attach")

# a driver name must be a plain file name: it is joined to a directory and exec'd
_DRIVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# ups.conf keys are written bare; anything else could not be read back
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# environment a child must not inherit: it would talk to systemd or take our sockets as its own
_CHILD_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID",
                   "LISTEN_FDNAMES")


def valid_driver_name(name: str) -> bool:
    return bool(_DRIVER_NAME.match(name)) and ".." not in name


def search_dirs(config: Mapping[str, str]) -> list[Path]:
    """Where to look for the binary: ``_driverpath`` (relative to ``_confdir``) if set, else
    :data:`SEARCH_DIRS`."""
    driverpath = config.get("_driverpath", "").strip()
    if driverpath:
        path = Path(driverpath)
        if not path.is_absolute() and config.get("_confdir"):
            path = Path(config["_confdir"]) / path
        return [path]
    return [Path(d) for d in SEARCH_DIRS]


def find_driver(config: Mapping[str, str]) -> Path | None:
    """The executable for ``config["driver"]``, or None (see :func:`search_dirs`)."""
    name = config.get("driver", "")
    if not valid_driver_name(name):
        return None
    for d in search_dirs(config):
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def not_found_message(config: Mapping[str, str]) -> str:
    name = config.get("driver", "")
    if not valid_driver_name(name):
        return f"'{name}' is not a driver name NUT could run"
    where = ", ".join(str(d) for d in search_dirs(config))
    hint = "" if config.get("_driverpath") else " (set driverpath in ups.conf's globals if it is elsewhere)"
    return f"no NUT driver '{name}' in {where}{hint}"


def section_options(config: Mapping[str, str]) -> dict[str, str]:
    """The keys a C driver reads: everything but the loader's own ``_...`` keys."""
    return {k: v for k, v in config.items() if not k.startswith("_") and _KEY.match(k)}


def ups_conf_text(ups: str, config: Mapping[str, str]) -> str:
    """The private ups.conf: no globals (the bridge passes ``-u``; ``statepath`` must not
    override NUT_STATEPATH), one section ``[ups]`` with the user's options; ``_flags`` lists the
    options the user wrote as bare flags (``nolock``), which are written bare again."""
    flags = set(config.get("_flags", "").split())
    lines = ["# written by nutbridge for the driver it hosts; edit the real ups.conf instead", "",
             f"[{ups}]"]
    options = section_options(config)
    for key in ("driver", "port"):  # first, as people write them
        if key in options:
            lines.append(f"\t{key} = {quote(options.pop(key))}")
    for key, value in options.items():
        lines.append(f"\t{key}" if key in flags else f"\t{key} = {quote(value)}")
    if "synchronous" not in options:
        lines.append('\tsynchronous = "yes"')
    return "\n".join(lines) + "\n"


def socket_path(statepath: str | Path, driver: str, ups: str) -> str:
    """``<statepath>/<driver>-<ups>``; ValueError when a C driver could not bind it."""
    path = os.path.join(str(statepath), f"{driver}-{ups}")
    if len(os.fsencode(path)) >= SUN_PATH_MAX:
        raise ValueError(f"driver socket path {path} is longer than the {SUN_PATH_MAX - 1} bytes "
                         "a Unix socket name can hold: use a shorter state path or UPS name")
    return path


def driver_argv(binary: str | Path, ups: str, user: str, *, kill: bool = False,
                extra: Iterable[str] = ()) -> list[str]:
    """``<bin> -a <ups> -F -u <user>``: foreground, as ``user`` (as root a C driver otherwise
    switches to the compiled-in ``nut``, which cannot use the bridge's private directory).
    ``kill``: ``-k`` (upsdrvctl shutdown) instead of ``-F``. ``extra``: ``-x key=value`` pairs."""
    argv = [str(binary), "-a", ups, "-k" if kill else "-F", "-u", user]
    for item in extra:
        argv += ["-x", item]
    return argv


def driver_env(base: Mapping[str, str], statepath: str | Path, confpath: str | Path) -> dict[str, str]:
    """The child's environment: ours, with NUT's paths pointing at the private directory."""
    env = {k: v for k, v in base.items() if k not in _CHILD_ENV_DROP}
    env.update(NUT_STATEPATH=str(statepath), NUT_CONFPATH=str(confpath),
               NUT_ALTPIDPATH=str(statepath), NUT_PIDPATH=str(statepath),
               NUT_QUIET_INIT_SSL="true")
    return env


def attach_statepath(config: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """Where running drivers have their sockets: ``_statepath`` (upsd.conf STATEPATH), else
    ``$NUT_STATEPATH``, else /run/nut, as the C upsd looks."""
    return config.get("_statepath") or environ.get("NUT_STATEPATH") or DEFAULT_STATEPATH


def maxage(config: Mapping[str, str]) -> int:
    """upsd.conf's MAXAGE as passed in ``_maxage`` (default 15); at least 1."""
    try:
        return max(1, int(config.get("_maxage", "") or DEFAULT_MAXAGE))
    except ValueError:
        return DEFAULT_MAXAGE


def mode(config: Mapping[str, str]) -> str:
    """``_mode``, or "" when the loader did not choose (native if possible, else hosted)."""
    return config.get("_mode", "").strip().lower()


def start_timeout(config: Mapping[str, str]) -> float:
    """How long a hosted driver may take to create its socket: ``maxstartdelay`` (upsdrvctl's
    option, default 45 s)."""
    try:
        value = float(config.get("maxstartdelay", "") or 45)
    except ValueError:
        return 45.0
    return value if 1 <= value <= 3600 else 45.0
