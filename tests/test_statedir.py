"""One state directory per bridge instance (statedir.py, docs/discovery.md).

The order (``--state-dir``, upsd.conf STATEPATH / ``$NUT_STATEPATH``, ``$STATE_DIRECTORY``,
derived from the config directory) is checked on :class:`StateDir`; the point of it, two
bridges with different configurations each keeping their history on disk, and a state
directory that cannot be written, on real ``nutbridge serve`` processes. Those that must use
the derived default run with /var/lib/nut-bridge replaced by a temporary directory (a
one-line wrapper around the real command line), so no test writes to the machine's own.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge import statedir
from nutbridge.statedir import StateDir, config_key

from .support.realnut import REPO, BridgeProcess, NutConfig, query, wait_port

ID_RE = re.compile(r"^[0-9a-f]{32}$")
ENV_KEYS = ("NUT_STATEPATH", "STATE_DIRECTORY", "XDG_STATE_HOME")
# `nutbridge serve` with statedir.SYSTEM_STATE_DIR = argv[1]
WRAPPER = ("import pathlib, sys; import nutbridge.statedir as s; "
           "s.SYSTEM_STATE_DIR = pathlib.Path(sys.argv[1]); "
           "from nutbridge.cli import main; sys.exit(main(sys.argv[2:]))")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No state-directory setting from the environment; /var/lib/nut-bridge -> tmp/system."""
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    system = tmp_path / "system"
    monkeypatch.setattr(statedir, "SYSTEM_STATE_DIR", system)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    yield system


def test_precedence(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = clean_env
    conf = tmp_path / "lab" / "nut"
    conf.mkdir(parents=True)
    derived = system / "config" / config_key(conf)
    assert derived.name.startswith("nut-") and len(derived.name) == len("nut-") + 12

    # 4. derived from the config dir: /etc/nut and the embedded default share the system dir
    assert StateDir(None, conf).path == derived
    assert StateDir(None, Path("/etc/nut")).path == system
    assert StateDir(None, None).path == system
    # 3. $STATE_DIRECTORY (systemd) beats it
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'systemd'}:{tmp_path / 'other'}")
    assert StateDir(None, conf).path == tmp_path / "systemd"
    # 2. $NUT_STATEPATH beats systemd; upsd.conf's STATEPATH beats $NUT_STATEPATH
    monkeypatch.setenv("NUT_STATEPATH", str(tmp_path / "env-run"))
    assert StateDir(None, conf).path == tmp_path / "env-run" / "nut-bridge"
    assert StateDir(None, conf, str(tmp_path / "conf-run")).path == tmp_path / "conf-run" / "nut-bridge"
    # 1. --state-dir beats everything
    assert StateDir(tmp_path / "explicit", conf, str(tmp_path / "conf-run")).path == tmp_path / "explicit"


def test_derived_dir_per_config(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = clean_env
    a, b = tmp_path / "a" / "nut", tmp_path / "b" / "nut"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (tmp_path / "link").symlink_to(a)
    pa, pb = StateDir(None, a).path, StateDir(None, b).path
    assert pa is not None and pb is not None and pa != pb
    assert pa.parent == pb.parent == system / "config"
    # the resolved path counts: a symlink to a config dir is that config
    assert StateDir(None, tmp_path / "link").path == pa
    # /var/lib/nut-bridge unusable (beneath a file) -> the same layout under $XDG_STATE_HOME
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(statedir, "SYSTEM_STATE_DIR", tmp_path / "file" / "nut-bridge")
    assert StateDir(None, a).path == tmp_path / "xdg" / "nut-bridge" / "config" / config_key(a)
    assert StateDir(None, None).path == tmp_path / "xdg" / "nut-bridge"


def test_etc_nut_keeps_its_server_id(clean_env: Path, tmp_path: Path) -> None:
    """/var/lib/nut-bridge/server-id stays /etc/nut's id, also when STATEPATH moves its state."""
    system = clean_env
    old = StateDir(None, Path("/etc/nut")).server_id
    assert (system / "server-id").read_text().strip() == old
    assert StateDir(None, None).server_id == old  # the embedded default: the same place
    moved = StateDir(None, Path("/etc/nut"), str(tmp_path / "run"))
    assert moved.path == tmp_path / "run" / "nut-bridge"
    assert moved.server_id == old
    assert (tmp_path / "run" / "nut-bridge" / "server-id").read_text().strip() == old
    # another config dir is another server
    other = tmp_path / "other"
    other.mkdir()
    assert StateDir(None, other, str(tmp_path / "run2")).server_id != old
    assert StateDir(None, other).server_id != old


def test_state_dir_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            caplog: pytest.LogCaptureFixture) -> None:
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd"))
    assert StateDir().path == tmp_path / "systemd"
    monkeypatch.delenv("STATE_DIRECTORY")
    # /var/lib/nut-bridge unusable (here: beneath a file) -> $XDG_STATE_HOME/nut-bridge
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(statedir, "SYSTEM_STATE_DIR", tmp_path / "file" / "nut-bridge")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    sd = StateDir()
    assert sd.path == tmp_path / "xdg" / "nut-bridge"
    assert ID_RE.match(sd.server_id)
    assert StateDir().server_id == sd.server_id
    # A corrupt id file is replaced.
    assert sd.path is not None
    (sd.path / "server-id").write_text("garbage\n")
    assert StateDir().server_id != sd.server_id
    # Nothing writable: one warning, and a derived id that depends on the config directory.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file" / "xdg"))
    with caplog.at_level(logging.WARNING, logger="nutbridge.statedir"):
        a = StateDir(confdir=tmp_path / "etc")
        assert a.path is None
        assert a.server_id == StateDir(confdir=tmp_path / "etc").server_id
        assert a.server_id != StateDir(confdir=tmp_path / "other").server_id
    assert sum("no writable state directory" in r.message for r in caplog.records) == 3


def test_volatile_statepath_warns(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    """A STATEPATH under /run (here: a stand-in for it) is used, with a warning: its id and
    certificate would change at every boot."""
    run = tmp_path / "run"
    monkeypatch.setattr(statedir, "_VOLATILE", (run,))
    with caplog.at_level(logging.INFO, logger="nutbridge.statedir"):
        assert StateDir(None, None, str(run / "nut")).path == run / "nut" / "nut-bridge"
        assert StateDir(None, None, str(tmp_path / "var")).path == tmp_path / "var" / "nut-bridge"
    assert sum("emptied at every boot" in r.message for r in caplog.records) == 1
    assert any(f"state directory {run / 'nut' / 'nut-bridge'} (upsd.conf STATEPATH)" in r.message
               for r in caplog.records)


# ---- real bridges ------------------------------------------------------------------------------


def _cfg(tmp: Path, name: str, upsd_extra: str = "") -> NutConfig:
    cfg = NutConfig(tmp / name)
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    cfg.upsd_extra = upsd_extra
    return cfg


def _start_derived(cfg: NutConfig, tmp: Path, system: Path) -> BridgeProcess:
    """``nutbridge serve -c <cfg>`` with no state-directory setting at all (the derived
    default), /var/lib/nut-bridge being ``system``."""
    cfg.write()
    env = cfg.env()
    for k in ENV_KEYS:
        env.pop(k, None)
    env.update(PYTHONPATH=str(REPO / "bridge"), HOME=str(tmp / "home"),
               XDG_STATE_HOME=str(tmp / "xdg"))
    log_path = cfg.run / "bridge.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(system), "serve",
                                 "--config-dir", str(cfg.etc)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    bp = BridgeProcess(cfg, proc, log_path)
    try:
        wait_port(cfg.port, timeout=15)
    except TimeoutError:
        bp.stop()
        raise RuntimeError(f"bridge did not start:\n{bp.log()}") from None
    return bp


def _kinds(d: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in (d / "events.jsonl").read_text().splitlines()]


def test_two_bridges_two_configs_two_histories(tmp_path: Path) -> None:
    """Two bridges with different config dirs and nothing else set: each its own directory
    beneath /var/lib/nut-bridge/config, each history on disk (neither finds it locked)."""
    system = tmp_path / "system"
    a, b = _cfg(tmp_path, "a"), _cfg(tmp_path, "b")
    with _start_derived(a, tmp_path, system) as pa, _start_derived(b, tmp_path, system) as pb:
        for cfg in (a, b):
            assert b'VAR sim ups.status "OL' in query(cfg.port, "GET VAR sim ups.status")
    da, db = system / "config" / config_key(a.etc), system / "config" / config_key(b.etc)
    assert da != db
    for d, p in ((da, pa), (db, pb)):
        assert "in use by another process" not in p.log() and "memory only" not in p.log(), p.log()
        assert f"state directory {d} (the config dir {p.cfg.etc})" in p.log()
        assert _kinds(d)[0] == "server" and len(_kinds(d)) >= 2  # started ... stopping
    assert not (system / "events.jsonl").exists()


def test_statepath_from_upsd_conf(tmp_path: Path) -> None:
    """upsd.conf STATEPATH beats $NUT_STATEPATH and $STATE_DIRECTORY (both set by NutConfig)."""
    run = tmp_path / "nutrun"
    run.mkdir()
    cfg = _cfg(tmp_path, "sp", upsd_extra=f"STATEPATH {run}\n")
    with BridgeProcess.start(cfg) as p:
        assert b"OL" in query(cfg.port, "GET VAR sim ups.status")
    assert f"state directory {run / 'nut-bridge'} (upsd.conf STATEPATH)" in p.log()
    assert _kinds(run / "nut-bridge")[0] == "server"
    assert not (tmp_path / "sp" / "state").exists()
    assert not (cfg.run / "nut-bridge").exists()


def test_unwritable_warns_once_and_serves(tmp_path: Path) -> None:
    """STATEPATH beneath a file: one warning, the bridge serves, events in memory (LIST EVENT)."""
    (tmp_path / "file").write_text("")
    cfg = _cfg(tmp_path, "ro", upsd_extra=f"STATEPATH {tmp_path / 'file' / 'run'}\n")
    with BridgeProcess.start(cfg, ["--listen", f"0.0.0.0:{cfg.port}"]) as p:
        assert b'VAR sim ups.status "OL' in query(cfg.port, "GET VAR sim ups.status")
        assert b"started" in query(cfg.port, "LIST EVENT *")  # kept in memory
    log = p.log()
    assert log.count("no writable state directory") == 1, log
    assert "STARTTLS is not offered" in log  # nowhere to keep a certificate: clear only
    assert "Traceback" not in log
