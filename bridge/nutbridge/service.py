"""``nutbridge service print|install``: the systemd unit, its user and the udev rules.

What a Debian / Raspberry Pi OS host needs to run the bridge as a service (docs/systemd.md):

* ``nutbridge.service`` (package data ``data/systemd/nutbridge.service``): ``Type=notify``
  (:mod:`nutbridge.sdnotify`), a static unprivileged user, hardening that leaves the UPS's
  device nodes reachable. Its ``ExecStart`` is rendered here from the *running* installation
  (the ``nutbridge`` script next to this interpreter, else ``<interpreter> -m nutbridge``), so
  the unit starts the very venv or pipx install that printed it, not a guessed path;
* ``sysusers.d/nutbridge.conf``: that user, in the groups ``nut`` (USB, /etc/nut) and
  ``dialout`` (serial ports);
* ``62-nut-bridge-usbups.rules``: the udev rules giving ``nut`` the USB UPSes our drivers take
  (``nutbridge udev-rules`` generates the same file).

``install`` writes them under ``--root`` (default ``/``) with mode 0644; only when installing
into the running system (root ``/``) does it apply them (``systemd-sysusers``, ``udevadm``,
``systemctl daemon-reload``, each only if present). It does not enable or start the service:
that is the administrator's step once /etc/nut is configured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

UNIT_NAME = "nutbridge.service"
DEFAULT_CONFIG_DIR = Path("/etc/nut")

#: with ProtectHome=yes the service sees nothing below these (an install there cannot start)
HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))


@dataclass(frozen=True)
class ServiceFile:
    """One file: the ``print`` name, where it goes below the root, its text."""

    name: str
    target: Path  # relative to the root
    text: str
    mode: int = 0o644


def _data(*parts: str) -> str:
    return resources.files("nutbridge").joinpath("data", *parts).read_text(encoding="utf-8")


def _is_script_of(script: Path, interpreter: Path) -> bool:
    """Is ``script`` a console script of ``interpreter``'s installation (its ``#!`` line names
    this interpreter or a sibling link to the same program)?"""
    try:
        if not (script.is_file() and os.access(script, os.X_OK)):
            return False
        with script.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    if not words:
        return False
    named = Path(words[0])
    # the same bin directory and the same program: python, python3 and python3.11 of one venv
    try:
        return named.parent == interpreter.parent and named.samefile(interpreter)
    except OSError:
        return False


def entry_point() -> list[str]:
    """The command that runs this installation's ``nutbridge``: the console script beside
    ``sys.executable`` when its ``#!`` names this interpreter (a venv, a pipx install), else the
    interpreter with ``-m nutbridge``. The interpreter path is kept as is, not resolved: in a
    venv it is the link that makes the venv's packages importable."""
    if not sys.executable:
        raise RuntimeError("cannot tell which Python runs nutbridge (sys.executable is empty)")
    interpreter = Path(sys.executable)
    script = interpreter.parent / "nutbridge"
    if _is_script_of(script, interpreter):
        return [str(script)]
    return [str(interpreter), "-m", "nutbridge"]


def _quote(arg: str) -> str:
    """One ExecStart= word: systemd expands ``%`` specifiers and ``$`` variables and splits at
    blanks, so those are escaped and a word with blanks or quotes is double-quoted."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c.isspace() or c in "\"'\\" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(command: list[str], config_dir: Path = DEFAULT_CONFIG_DIR) -> str:
    """The unit with ``command`` (see :func:`entry_point`) and ``config_dir`` filled in."""
    return (_data("systemd", UNIT_NAME)
            .replace("@NUTBRIDGE@", " ".join(_quote(a) for a in command))
            .replace("@CONFIG_DIR@", _quote(str(config_dir))))


def service_files(command: list[str] | None = None,
                  config_dir: Path = DEFAULT_CONFIG_DIR) -> list[ServiceFile]:
    """The three files, in the order they are installed (the user before the rules and unit)."""
    return [
        ServiceFile("sysusers", Path("etc/sysusers.d/nutbridge.conf"),
                    _data("systemd", "nutbridge.sysusers")),
        ServiceFile("udev", Path("etc/udev/rules.d/62-nut-bridge-usbups.rules"),
                    _data("udev", "62-nut-bridge-usbups.rules")),
        ServiceFile("unit", Path("etc/systemd/system") / UNIT_NAME,
                    render_unit(command or entry_point(), config_dir)),
    ]


def _problems(command: list[str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the service user reaching this installation."""
    import nutbridge

    errors: list[str] = []
    warnings: list[str] = []
    if not _importable_as_installed(Path(nutbridge.__file__)):
        errors.append(f"{sys.executable} finds this nutbridge ({Path(nutbridge.__file__).parent}) only "
                      "through PYTHONPATH or a user site, which the service does not have: install "
                      "the package into a venv or with pipx (docs/systemd.md)")
    paths = [Path(command[0]), Path(nutbridge.__file__).parent]
    for path in paths:
        absolute = Path(os.path.abspath(path))
        hidden = next((h for h in HIDDEN_BY_PROTECT_HOME if absolute.is_relative_to(h)), None)
        if hidden is not None:
            errors.append(f"{absolute} is below {hidden}, which the service cannot see (ProtectHome=yes) "
                          "and its user cannot read: install nutbridge outside home directories, "
                          "e.g. a venv in /opt/nut-bridge or pipx with PIPX_HOME=/opt/pipx (docs/systemd.md)")
            continue
        for parent in [absolute, *absolute.parents][1:]:
            try:
                mode = parent.stat().st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH:
                warnings.append(f"{parent} is not searchable by other users (mode {stat.S_IMODE(mode):o}): "
                                f"the service user 'nutbridge' may not reach {absolute}")
                break
    return errors, warnings


def _importable_as_installed(package_file: Path) -> bool:
    """Does this interpreter import this very nutbridge without our environment (``-I``: no
    PYTHONPATH, no user site), as it will under systemd? Not so for a source checkout on
    PYTHONPATH or a ``pip install --user``."""
    probe = [sys.executable, "-I", "-c", "import nutbridge; print(nutbridge.__file__)"]
    try:
        out = subprocess.run(probe, capture_output=True, text=True, timeout=60, cwd="/",
                             env={"PATH": os.defpath})
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = out.stdout.strip()
    return out.returncode == 0 and bool(found) and Path(found).resolve() == package_file.resolve()


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically (a reader never sees half a unit), with exactly ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)  # os.open's mode is filtered by the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _apply(files: dict[str, Path]) -> bool:
    """Installed into the running system: create the user, reload udev and systemd. Each tool
    only if it exists; False when one of them failed (the files are in place regardless)."""
    steps: list[list[str]] = []
    if shutil.which("systemd-sysusers"):
        steps.append(["systemd-sysusers", str(files["sysusers"])])
    if shutil.which("udevadm"):
        steps += [["udevadm", "control", "--reload-rules"], ["udevadm", "trigger", "--subsystem-match=usb"]]
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():  # booted with systemd
        steps.append(["systemctl", "daemon-reload"])
    ok = True
    for argv in steps:
        print("+ " + " ".join(argv), flush=True)
        try:
            rc = subprocess.run(argv, check=False).returncode
        except OSError as exc:
            rc, why = -1, exc.strerror
        else:
            why = f"exit {rc}"
        if rc != 0:
            sys.stderr.write(f"nutbridge service: {argv[0]} failed ({why})\n")
            ok = False
    return ok


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nutbridge service",
        description="Print or install the systemd unit (nutbridge.service), its sysusers.d user and "
        "the udev rules, for this installation of nutbridge (docs/systemd.md).")
    sub = p.add_subparsers(dest="action", required=True)
    pr = sub.add_parser("print", help="print the files (all, or the one named)")
    pr.add_argument("what", nargs="?", choices=("unit", "sysusers", "udev"),
                    help="only this file, exactly as install writes it")
    ins = sub.add_parser("install", help="write the files below --root; on / also apply them")
    ins.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                     help="install below this directory instead of / (nothing is applied then)")
    for q in (pr, ins):
        q.add_argument("-c", "--config-dir", type=Path, default=DEFAULT_CONFIG_DIR, metavar="DIR",
                       help="NUT configuration directory the service reads (default: /etc/nut)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.config_dir.is_absolute():
        sys.stderr.write(f"nutbridge service: --config-dir must be an absolute path, not {args.config_dir}\n")
        return 2
    try:
        command = entry_point()
    except RuntimeError as exc:
        sys.stderr.write(f"nutbridge service: {exc}\n")
        return 1
    files = service_files(command, args.config_dir)
    errors, warnings = _problems(command)
    for w in warnings:
        sys.stderr.write(f"nutbridge service: warning: {w}\n")
    if args.action == "print":
        for e in errors:
            sys.stderr.write(f"nutbridge service: warning: {e}\n")
        chosen = [f for f in files if args.what in (None, f.name)]
        for f in chosen:
            if args.what is None:
                sys.stdout.write(f"### /{f.target}\n")
            sys.stdout.write(f.text)
        return 0
    if errors:
        for e in errors:
            sys.stderr.write(f"nutbridge service: {e}\n")
        return 2
    root: Path = args.root
    written: dict[str, Path] = {}
    for f in files:
        path = root / f.target
        try:
            _write(path, f.text, f.mode)
        except OSError as exc:
            sys.stderr.write(f"nutbridge service: cannot write {path}: {exc.strerror}\n")
            return 1
        written[f.name] = path
        print(f"wrote {path}")
    ok = True
    if root.resolve() == Path("/"):
        ok = _apply(written)
        print("next: configure /etc/nut (docs/systemd.md), then: systemctl enable --now nutbridge")
    return 0 if ok else 1
