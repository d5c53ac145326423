"""The systemd service (docs/systemd.md): the unit, its user, sd_notify, ``nutbridge service``.

* ``systemd-analyze verify`` (Debian 12: systemd 252) of the unit as ``nutbridge service``
  renders it for this installation, with nothing on stderr. 252's ``verify`` parses every key,
  loads the referenced units and checks that ExecStart's program exists and is executable, but
  it does not look up ``User=``/``Group=``/``SupplementaryGroups=`` (the ``nutbridge`` user does
  not exist on a build host, and verify is clean regardless; ``--root`` does not help: it moves
  the unit search path into the root, and "Unit nutbridge.service not found"). So the user is
  proven on its own: ``systemd-sysusers --root`` applies our sysusers.d file to a scratch
  /etc and the user appears with the groups the unit names. Unknown keys and bad values only
  *warn* with exit 0 in 252, so a test that looked at the exit code alone would pass a typo:
  the negative controls below show that stderr does catch them.
* sd_notify from a real ``nutbridge serve`` started with the unit's own ExecStart: READY=1
  (checked by connecting to upsd the moment it arrives), RELOADING=1 + READY=1 around SIGHUP,
  STOPPING=1 on SIGTERM, on a path socket and on an abstract one; nothing without
  $NOTIFY_SOCKET.
* ``nutbridge service install --root`` writes the three files with mode 0644 whatever the
  umask, and ``nutbridge service print`` shows exactly them.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nutbridge import sdnotify, service
from tests.support.realnut import REPO, NutConfig, free_port, query, require

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSUSERS = shutil.which("systemd-sysusers")
DEV = """\
ups.status: OL
battery.charge: 100
device.mfr: Test
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "bridge"), env.get("PYTHONPATH", "")) if p)
    env.pop("NOTIFY_SOCKET", None)
    return env


def _nutbridge(*args: str, preexec: bool = False) -> subprocess.CompletedProcess[str]:
    """The installation's own ``nutbridge`` (what ExecStart runs), not a module of this process."""
    return subprocess.run([*service.entry_point(), *args], capture_output=True, text=True, env=_env(),
                          timeout=60, preexec_fn=(lambda: os.umask(0o077)) if preexec else None)


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    require("systemd-analyze (apt-get install systemd)", SYSTEMD_ANALYZE)
    assert SYSTEMD_ANALYZE
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60, cwd=unit.parent)


# ---- the unit -----------------------------------------------------------------------------------


def test_unit_verifies_clean(tmp_path: Path) -> None:
    unit = tmp_path / service.UNIT_NAME
    unit.write_text(service.render_unit(service.entry_point()))
    p = _verify(unit)
    assert (p.returncode, p.stderr, p.stdout) == (0, "", "")
    text = unit.read_text()
    assert "@NUTBRIDGE@" not in text and "@CONFIG_DIR@" not in text
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [
        *service.entry_point(), "serve", "--config-dir", "/etc/nut", "--state-dir", "/var/lib/nut-bridge",
        "--no-monitor"]


def test_verify_catches_what_252_only_warns_about(tmp_path: Path) -> None:
    """The negative controls: a misspelled key and a missing program both reach stderr, so
    "nothing on stderr" above is a real check."""
    good = service.render_unit(service.entry_point())
    typo = tmp_path / "typo" / service.UNIT_NAME
    typo.parent.mkdir()
    typo.write_text(good.replace("ProtectSystem=strict", "ProtectSystm=strict"))
    p = _verify(typo)
    assert p.returncode == 0 and "Unknown key 'ProtectSystm'" in p.stderr  # rc alone would pass it
    missing = tmp_path / "missing" / service.UNIT_NAME
    missing.parent.mkdir()
    missing.write_text(service.render_unit([str(tmp_path / "no-such-nutbridge")]))
    p = _verify(missing)
    assert p.returncode != 0 and "no-such-nutbridge" in p.stderr


def test_exec_start_quoting_survives_systemd(tmp_path: Path) -> None:
    """An installation below a path with a blank and a '%' (a specifier to systemd): verify
    finds the program, so systemd unquoted the word back to the real path."""
    odd = tmp_path / "my venv 100%" / "bin"
    odd.mkdir(parents=True)
    (odd / "nutbridge").symlink_to(service.entry_point()[0])
    unit = tmp_path / service.UNIT_NAME
    unit.write_text(service.render_unit([str(odd / "nutbridge")], Path("/etc/nut bridge")))
    p = _verify(unit)
    assert (p.returncode, p.stderr) == (0, "")
    escaped = str(odd / "nutbridge").replace("%", "%%")
    assert f'ExecStart="{escaped}" serve --config-dir "/etc/nut bridge" ' in unit.read_text()


def test_hardening_keeps_devices_reachable() -> None:
    """PrivateDevices= and ProtectClock= (it implies DeviceAllow=char-rtc) would close the device
    cgroup to /dev/bus/usb and /dev/ttyUSB* (systemd.exec(5) of 252); the groups give access."""
    text = service.render_unit(service.entry_point())
    keys = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}
    assert not keys & {"PrivateDevices", "ProtectClock", "DevicePolicy", "DeviceAllow", "DynamicUser"}
    assert "Type=notify" in text and "StateDirectory=nut-bridge" in text and "Restart=on-failure" in text
    assert "User=nutbridge" in text and "SupplementaryGroups=nut dialout" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    # the udev rules give the same group the USB UPSes
    rules = (REPO / "bridge/nutbridge/data/udev/62-nut-bridge-usbups.rules").read_text()
    assert 'GROUP="nut"' in rules and 'GROUP="' + "nutbridge" not in rules


def test_security_exposure(tmp_path: Path) -> None:
    """systemd's own offline score of the sandbox: stays "OK" (2.0 when written)."""
    require("systemd-analyze (apt-get install systemd)", SYSTEMD_ANALYZE)
    assert SYSTEMD_ANALYZE
    unit = tmp_path / service.UNIT_NAME
    unit.write_text(service.render_unit(service.entry_point()))
    p = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=25", "--no-pager",
                        str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    level = re.search(r"Overall exposure level for nutbridge.service: (\d+\.\d+)", p.stdout)
    assert level is not None and float(level.group(1)) <= 2.5, p.stdout[-500:]


@pytest.mark.parametrize("nut_exists", [True, False], ids=["nut-installed", "no-nut"])
def test_sysusers_creates_the_user_in_the_device_groups(tmp_path: Path, nut_exists: bool) -> None:
    require("systemd-sysusers (apt-get install systemd)", SYSUSERS)
    assert SYSUSERS
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                + ("nut:x:103:105::/var/lib/nut:/usr/sbin/nologin\n" if nut_exists else ""))
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n" + ("nut:x:105:\n" if nut_exists else ""))
    conf = service.service_files()[0]
    assert conf.name == "sysusers"
    src = tmp_path / "nutbridge.conf"
    src.write_text(conf.text)
    p = subprocess.run([SYSUSERS, f"--root={tmp_path}", str(src)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    users = {line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (etc / "group").read_text().splitlines()}
    user = users["nutbridge"]
    assert 0 < int(user[2]) < 1000 and user[5] == "/var/lib/nut-bridge" and user[6].endswith("nologin")
    assert groups["nutbridge"][2] == user[3]  # its own primary group
    assert groups["nut"][3].split(",") == ["nutbridge"] and groups["dialout"][3].split(",") == ["nutbridge"]
    if nut_exists:
        assert groups["nut"][2] == "105"  # NUT's group is joined, not replaced


# ---- sd_notify from `nutbridge serve` ----------------------------------------------------------


@contextmanager
def _notify_socket(tmp_path: Path, abstract: bool) -> Iterator[tuple[socket.socket, str]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"nutbridge-test-{uuid.uuid4().hex}"
            sock.bind(b"\0" + name.encode())
            env_value = "@" + name
        else:
            env_value = str(tmp_path / "notify")
            sock.bind(env_value)
        sock.settimeout(20)
        yield sock, env_value


def _serve_as_the_unit(tmp_path: Path, notify: str,
                       port: int | None = None) -> tuple[subprocess.Popen[bytes], NutConfig, Path]:
    """``nutbridge serve`` exactly as the unit's ExecStart has it, on a test configuration."""
    cfg = NutConfig(tmp_path / "nut", port=port or free_port())
    cfg.root.mkdir(parents=True)
    (cfg.root / "ups.dev").write_text(DEV)
    cfg.add_ups("ups", driver="dummy-ups", port=str(cfg.root / "ups.dev"))
    cfg.write()
    line = next(x for x in service.render_unit(service.entry_point(), cfg.etc).splitlines()
                if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    # the unit's state directory is systemd's /var/lib/nut-bridge: the test keeps its own
    argv[argv.index("--state-dir") + 1] = str(cfg.root / "state")
    env = {**cfg.env(), **_env(), "NOTIFY_SOCKET": notify}
    log = cfg.run / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, cfg, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_serve_notifies_systemd(tmp_path: Path, abstract: bool) -> None:
    with _notify_socket(tmp_path, abstract) as (sock, env_value):
        proc, cfg, log = _serve_as_the_unit(tmp_path, env_value)
        try:
            ready = sock.recv(4096)
            # the moment READY=1 arrives, upsd answers and the driver's data is there
            answer = query(cfg.port, "GET VAR ups ups.status", timeout=2)
            assert answer == b'VAR ups ups.status "OL"\n', log.read_text()
            assert ready == f"READY=1\nSTATUS=serving 1 UPS on 127.0.0.1:{cfg.port}".encode()

            proc.send_signal(signal.SIGHUP)
            reloading = sock.recv(4096).decode()
            m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", reloading)
            assert m, reloading
            # CLOCK_MONOTONIC in µs, the clock systemd compares it with
            assert abs(time.clock_gettime(time.CLOCK_MONOTONIC) - int(m.group(1)) / 1e6) < 10
            assert sock.recv(4096) == ready  # the reload is over: READY=1 again

            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert proc.wait(20) == 0, log.read_text()
        finally:
            _stop(proc)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # nothing after STOPPING=1


def test_serve_failing_to_start_never_says_ready(tmp_path: Path) -> None:
    """Port taken: exit 1 and not a word to systemd (it counts the start as failed)."""
    with socket.socket() as taken, _notify_socket(tmp_path, False) as (sock, env_value):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc, _cfg, log = _serve_as_the_unit(tmp_path, env_value, port=taken.getsockname()[1])
        try:
            assert proc.wait(30) == 1, log.read_text()
        finally:
            _stop(proc)
        assert "in use" in log.read_text()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(4096)


# ---- sdnotify itself ----------------------------------------------------------------------------


def test_sdnotify_abstract_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for abstract in (False, True):
        with _notify_socket(tmp_path, abstract) as (sock, env_value):
            monkeypatch.setenv("NOTIFY_SOCKET", env_value)
            assert sdnotify.status("two\nlines   here")
            assert sock.recv(4096) == b"STATUS=two lines here"
            assert sdnotify.ready()
            assert sock.recv(4096) == b"READY=1"
            assert sdnotify.stopping()
            assert sock.recv(4096) == b"STOPPING=1"


def test_sdnotify_without_socket_is_silent(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    caplog.set_level(logging.DEBUG, logger="nutbridge.sdnotify")
    assert not any(f() for f in (sdnotify.ready, sdnotify.reloading, sdnotify.stopping))
    assert not sdnotify.status("x")
    assert caplog.records == []


def test_sdnotify_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nutbridge.sdnotify")
    for bad in (str(tmp_path / "nobody-listens"), "@nutbridge-nobody-" + uuid.uuid4().hex, "vsock:2:1234"):
        monkeypatch.setenv("NOTIFY_SOCKET", bad)
        assert sdnotify.ready("x") is False
    assert len(caplog.records) == 3 and all(r.levelno == logging.DEBUG for r in caplog.records)


# ---- nutbridge service print|install ------------------------------------------------------------


def test_install_root_writes_the_files_print_shows(tmp_path: Path) -> None:
    root = tmp_path / "root"
    p = _nutbridge("service", "install", "--root", str(root), preexec=True)  # under umask 077
    assert p.returncode == 0, p.stderr
    expected = {
        "sysusers": root / "etc/sysusers.d/nutbridge.conf",
        "udev": root / "etc/udev/rules.d/62-nut-bridge-usbups.rules",
        "unit": root / "etc/systemd/system/nutbridge.service",
    }
    assert sorted(str(x.relative_to(root)) for x in root.rglob("*") if x.is_file()) == sorted(
        str(x.relative_to(root)) for x in expected.values())
    for name, path in expected.items():
        assert path.stat().st_mode & 0o7777 == 0o644, (path, oct(path.stat().st_mode))
        shown = _nutbridge("service", "print", name)
        assert shown.returncode == 0 and shown.stdout == path.read_text(), name
    # the udev rules are the shipped (generated) file; the unit runs this installation
    shipped = REPO / "bridge/nutbridge/data/udev/62-nut-bridge-usbups.rules"
    assert expected["udev"].read_text() == shipped.read_text()
    command = " ".join(service.entry_point())
    assert (f"ExecStart={command} serve --config-dir /etc/nut --state-dir /var/lib/nut-bridge --no-monitor\n"
            in expected["unit"].read_text())
    # nothing was applied to this host: a root other than / is only written
    assert "+ " not in p.stdout
    both = _nutbridge("service", "print")
    assert both.stdout == "".join(f"### /{path.relative_to(root)}\n{path.read_text()}"
                                  for path in expected.values())


def test_install_refuses_an_installation_in_a_home_directory() -> None:
    errors, _ = service._problems(["/home/alice/.local/pipx/venvs/nutbridge-ups/bin/nutbridge"])
    assert errors and "ProtectHome" in errors[0]
    if not str(Path(sys.executable)).startswith(("/home/", "/root/")):  # this checkout: no error
        assert service._problems(service.entry_point())[0] == []


def test_config_dir_must_be_absolute() -> None:
    p = _nutbridge("service", "print", "--config-dir", "etc/nut")
    assert p.returncode == 2 and "absolute" in p.stderr and "Traceback" not in p.stderr


def test_upsd_role_notifies_systemd(tmp_path: Path) -> None:
    """``nutbridge upsd -F`` (the C upsd's place, as NUT's Type=notify nut-server.service runs it):
    READY=1 once it listens (no driver needs to be up, as upsd's), the reload, STOPPING=1."""
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", driver="dummy-ups", port="ups.dev")
    cfg.write()
    with _notify_socket(tmp_path, False) as (sock, env_value):
        env = {**cfg.env(), **_env(), "NOTIFY_SOCKET": env_value}
        with open(cfg.run / "upsd.log", "wb") as out:
            proc = subprocess.Popen([*service.entry_point(), "upsd", "-F", "-u", "root"], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            ready = sock.recv(4096)
            assert query(cfg.port, "LIST UPS", timeout=2).startswith(b"BEGIN LIST UPS\nUPS ups ")
            assert ready == f"READY=1\nSTATUS=serving 1 UPS on 127.0.0.1:{cfg.port}".encode()
            proc.send_signal(signal.SIGHUP)
            assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert sock.recv(4096) == ready
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert proc.wait(20) == 0
        finally:
            _stop(proc)


def test_install_refuses_a_nutbridge_found_only_through_pythonpath(tmp_path: Path) -> None:
    """A source checkout on PYTHONPATH: systemd would start the interpreter without it, so the
    unit could not import nutbridge. install says so (exit 2) and writes nothing."""
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    probe = subprocess.run([str(base), "-I", "-c", "import nutbridge"], capture_output=True, timeout=60,
                           cwd="/")
    require("a Python without nutbridge installed (the venv's base interpreter)", probe.returncode != 0)
    p = subprocess.run([str(base), "-m", "nutbridge", "service", "install", "--root", str(tmp_path / "root")],
                       capture_output=True, text=True, timeout=60, env=_env())
    assert p.returncode == 2 and "only through PYTHONPATH" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "root").exists()
