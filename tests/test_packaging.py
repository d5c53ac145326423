"""The distribution: a name PyPI accepts, one version, and a wheel that works on its own.

See docs/packaging.md. The name check reproduces PyPI's "too similar to an existing project"
rule (warehouse's ultranormalization); the build test builds the sdist and wheel with
``python -m build`` from a copy of the sources, checks them with ``twine check``, installs the
wheel into a fresh venv and reads that venv's ``nutbridge serve`` with NUT's own ``upsc``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

import nutbridge
from tests.support import realnut

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NAME: str = PYPROJECT["project"]["name"]
MANIFEST = ROOT / "custom_components" / "nut_bridge" / "manifest.json"

# Projects on PyPI our name must never be confused with (docs/packaging.md): "nutbridge" 0.0.6,
# an unrelated S3 helper that also installs a `nutbridge` package and command.
TAKEN_ON_PYPI = ("nutbridge",)


def ultranormalize(name: str) -> str:
    """A project name as PyPI folds it to refuse look-alikes of existing projects.

    Warehouse (PyPI's server) compares this form of a new name with that of every existing
    project: the separators ``.``, ``_`` and ``-`` are dropped, ``l``/``L``/``i``/``I`` become
    ``1`` and ``o``/``O`` become ``0``, and the result is lowercased. Nothing else is folded.
    """
    name = re.sub(r"[._-]", "", name)
    name = re.sub(r"[lLiI]", "1", name)
    name = re.sub(r"[oO]", "0", name)
    return name.lower()


def _file_name_part(name: str) -> str:
    """The name as it appears in wheel and sdist file names (runs of -_. as one _, lowercase)."""
    return re.sub(r"[-_.]+", "_", name).lower()


# ---------------------------------------------------------------- the folding function


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("nutbridge", "nutbr1dge"),
        ("nut-bridge", "nutbr1dge"),
        ("Nut_Bridge", "nutbr1dge"),
        ("NUT.BRIDGE", "nutbr1dge"),
        ("nut--bridge", "nutbr1dge"),
        ("nutbr1dge", "nutbr1dge"),
        ("nutbrldge", "nutbr1dge"),
        ("nutbridge-ups", "nutbr1dgeups"),
        ("foo", "f00"),
        ("FOO", "f00"),
        ("f00", "f00"),
        ("l10n", "110n"),
        ("lion", "110n"),
        ("Pillow", "p1110w"),
        ("a.b_c-d", "abcd"),
    ],
)
def test_ultranormalize(name: str, folded: str) -> None:
    assert ultranormalize(name) == folded


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nut-bridge", "nutbridge"),  # the reason for this file
        ("tlgr", "tigr"),  # refused by PyPI for this reason (pypi/support#12212)
        ("lion", "l10n"),  # (pypi/warehouse#11139)
        ("nsbi", "nsbl"),  # (pypi/support#3973)
        ("nutbridge_ups", "NutBridge.UPS"),
    ],
)
def test_ultranormalize_confuses_what_pypi_confuses(a: str, b: str) -> None:
    assert ultranormalize(a) == ultranormalize(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nutbridge-ups", "nutbridge"),
        ("nutbridgeups", "nutbridgeup5"),  # 5/s is not folded
        ("modem", "rnodem"),  # nor rn/m
        ("ertk", "nertk"),  # one letter more is a different name (pypi/warehouse#10810)
    ],
)
def test_ultranormalize_keeps_apart_what_pypi_keeps_apart(a: str, b: str) -> None:
    assert ultranormalize(a) != ultranormalize(b)


# ---------------------------------------------------------------- our name and version


def test_distribution_name_is_not_too_similar_to_an_existing_project() -> None:
    assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", NAME), NAME
    for taken in TAKEN_ON_PYPI:
        assert ultranormalize(NAME) != ultranormalize(taken), (
            f"pyproject.toml's name {NAME!r} folds to {ultranormalize(NAME)!r}, as the existing PyPI "
            f"project {taken!r} does: PyPI refuses it as too similar (docs/packaging.md)"
        )


def test_command_and_import_package_keep_their_names() -> None:
    assert PYPROJECT["project"]["scripts"] == {"nutbridge": "nutbridge.cli:entry"}
    assert (ROOT / "bridge" / "nutbridge" / "__init__.py").is_file()


def test_version_is_written_once() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nutbridge.__version__"}
    # Home Assistant needs a literal; scripts/build_hacs.py refuses a zip where they differ.
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert manifest["version"] == nutbridge.__version__, (
        "custom_components/nut_bridge/manifest.json's version must be bridge/nutbridge/__init__.py's"
    )


def test_manifest_does_not_require_the_distribution() -> None:
    """The HACS zip vendors nutbridge; a requirement would also match the unrelated PyPI project."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    for requirement in manifest.get("requirements", []):
        folded = ultranormalize(re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0])
        assert not folded.startswith(ultranormalize("nutbridge")), requirement


# ---------------------------------------------------------------- build, install, serve


def _run(
    args: list[str | Path], timeout: float, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def _copy_sources(dest: Path) -> None:
    """What the sdist is built from, without build artefacts (the working tree stays untouched)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for extra in ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(extra, dest / extra.name)
    shutil.copytree(
        ROOT / "bridge" / "nutbridge",
        dest / "bridge" / "nutbridge",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_built_wheel_installs_and_serves(tmp_path: Path) -> None:
    upsc = realnut.require_client("upsc")
    for module in ("build", "twine", "venv", "ensurepip"):
        realnut.require(f"Python module {module} (the test extra; python3-venv)",
                        importlib.util.find_spec(module))
    version = nutbridge.__version__
    stem = f"{_file_name_part(NAME)}-{version}"
    env = {k: v for k, v in os.environ.items() if k not in ("NUT_CONFPATH", "PYTHONPATH", "PYTHONHOME")}

    src = tmp_path / "src"
    dist = tmp_path / "dist"
    _copy_sources(src)
    _run([sys.executable, "-m", "build", "--outdir", dist, src], timeout=60, env=env, cwd=tmp_path)
    wheel = dist / f"{stem}-py3-none-any.whl"
    sdist = dist / f"{stem}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == sorted([wheel.name, sdist.name])

    checked = _run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist], timeout=30, env=env)
    assert checked.stdout.count("PASSED") == 2, checked.stdout

    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"{stem}.dist-info/METADATA").decode()
        entry_points = zf.read(f"{stem}.dist-info/entry_points.txt").decode()
        top_level = {n.split("/")[0] for n in zf.namelist()}
    assert f"\nName: {NAME}\n" in metadata and f"\nVersion: {version}\n" in metadata
    assert "nutbridge = nutbridge.cli:entry" in entry_points
    assert top_level == {"nutbridge", f"{stem}.dist-info"}
    with tarfile.open(sdist) as tf:
        pkg_info = tf.extractfile(f"{stem}/PKG-INFO")
        assert pkg_info is not None
        assert f"\nName: {NAME}\n" in pkg_info.read().decode()

    # A fresh venv: only the wheel and its dependencies, from the index pip is
    # configured with; run from tmp_path so the working tree's package cannot be imported.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=60, env=env)
    vpy, exe = venv / "bin" / "python", venv / "bin" / "nutbridge"
    _run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
         timeout=120, env=env, cwd=tmp_path)
    where = _run([vpy, "-c", "import importlib.metadata as m, nutbridge; "
                  f"print(m.version({NAME!r})); print(nutbridge.__file__)"],
                 timeout=30, env=env, cwd=tmp_path).stdout.split("\n")
    assert where[0] == version
    assert Path(where[1]).is_relative_to(venv), where[1]
    assert _run([exe, "--version"], timeout=30, env=env, cwd=tmp_path).stdout == f"nutbridge {version}\n"
    # the wheel carries the systemd unit template, rendered for this venv's entry point
    unit = _run([exe, "service", "print", "unit"], timeout=30, env=env, cwd=tmp_path).stdout
    assert f"\nExecStart={exe} serve " in unit, unit

    # No configuration (NUT_CONFPATH unset): the embedded simulated UPS "sim".
    port = realnut.free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", tmp_path / "state"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
    try:
        try:
            realnut.wait_port(port, timeout=20)
        except TimeoutError:
            pytest.fail(f"nutbridge serve from the wheel did not listen:\n{log.read_text()}")
        listing = _run([upsc, f"sim@127.0.0.1:{port}"], timeout=10,
                       env={**env, "NUT_QUIET_INIT_SSL": "true"}).stdout
        assert "ups.status: OL\n" in listing, listing
        assert "driver.name: nutbridge-sim\n" in listing, listing
        assert f"driver.version: {version}\n" in listing, listing
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _serves_serial_and_usb_without_extras(exe, upsc, tmp_path, env)


#: a recorded APC Back-UPS: replayed through pyusb's backend interface (the fake backend),
#: so the wheel's usbhid-ups path runs with the pyusb the plain install brought
USB_DUMP = "APC/APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"


def _serves_serial_and_usb_without_extras(exe: Path, upsc: str, tmp_path: Path,
                                          env: dict[str, str]) -> None:
    """The wheel installed without extras drives a serial UPS (Megatec on a pty, from the
    wheel's own simulator) and a USB HID UPS (a recorded device) next to each other."""
    dump = realnut.require_path(realnut.DDL_DIR / USB_DUMP, "the NUT DDL corpus")
    link, conf, port = tmp_path / "ttyQX", tmp_path / "etc", realnut.free_port()
    conf.mkdir()
    (conf / "ups.conf").write_text(f"[qx]\n driver = nutdrv_qx\n port = {link}\n"
                                   f"[hid]\n driver = usbhid-ups\n port = {dump}\n")
    (conf / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    (conf / "upsd.users").write_text("")
    log = tmp_path / "serve-devices.log"
    with log.open("wb") as out:
        sim = subprocess.Popen([exe, "simulate", "megatec", "--link", link],
                               stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        proc = None
        try:
            deadline = time.monotonic() + 20
            while not link.exists() and sim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            proc = subprocess.Popen([exe, "serve", "-c", conf, "--state-dir", tmp_path / "state2"],
                                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
            realnut.wait_ready_ups(port, ["qx", "hid"], timeout=30)
            for ups, driver in (("qx", "nutdrv_qx"), ("hid", "usbhid-ups")):
                listing = _run([upsc, f"{ups}@127.0.0.1:{port}"], timeout=10,
                               env={**env, "NUT_QUIET_INIT_SSL": "true"}).stdout
                assert f"driver.name: {driver}\n" in listing, (listing, log.read_text())
                assert re.search(r"^ups\.status: OL", listing, re.M), (listing, log.read_text())
        except TimeoutError:
            pytest.fail(f"the wheel's serial/USB UPSes did not come up:\n{log.read_text()}")
        finally:
            for p in (proc, sim):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
