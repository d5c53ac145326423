"""upsd features beyond the byte-level differential: configuration errors,
listeners, limits, staleness, TLS, and host-based access control.

Every test runs the real ``nutbridge serve`` process on real sockets.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nutbridge.client import NutClient
from nutbridge.client.errors import NutError
from nutbridge.client.tls import TLSMode, TLSOptions
from tests.support import realnut
from tests.support.realnut import REPO, BridgeProcess, NutConfig

DEV = "ups.status: OL CHRG\nbattery.charge: 97\nups.mfr: Test\nups.model: Unit\n"


def serve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.pop("NUT_CONFPATH", None)
    e["PYTHONPATH"] = str(REPO / "bridge")
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nutbridge", "serve", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )


def make_cfg(tmp_path: Path, **upsd: str) -> NutConfig:
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True, exist_ok=True)
    dev = cfg.root / "test.dev"
    dev.write_text(DEV)
    cfg.add_ups("test", driver="dummy-ups", port=str(dev), desc="Test UPS")
    cfg.upsd_extra = "".join(f"{k} {v}\n" for k, v in upsd.items())
    return cfg


def ask(port: int, *lines: str, host: str = "127.0.0.1") -> str:
    return realnut.query(port, *lines, host=host).decode()


# ---- configuration errors: file:line, exit code 2, no traceback -------------------

BROKEN = [
    (
        "ups.conf",
        "[test]\n  driver = dummy-ups\n  port = x.dev\n[bad/name]\n  driver = dummy-ups\n",
        "ups.conf:4: invalid UPS name",
    ),
    ("ups.conf", "[test]\n  driver = dummy-ups\n", "ups.conf:1: UPS [test] has no 'port' setting"),
    (
        "ups.conf",
        "[test]\n  driver = no-such-driver\n  port = x\n",
        "ups.conf:2: unknown driver 'no-such-driver'",
    ),
    (
        "ups.conf",
        "[test]\n  driver = dummy-ups\n  port = x.dev\n  pollinterval = fast\n",
        "ups.conf:4: invalid value 'fast' for 'pollinterval'",
    ),
    (
        "ups.conf",
        '[test]\n  driver = dummy-ups\n  port = x.dev\n  desc = "unterminated\n',
        "ups.conf:4: unterminated quoted string",
    ),
    (
        "ups.conf",
        "[a]\n driver = dummy-ups\n port = x.dev\n[A]\n driver = dummy-ups\n port = y.dev\n",
        "ups.conf:4: UPS name [A] is already in use",
    ),
    ("ups.conf", "# nothing here\n", "at least one UPS must be defined"),
    ("upsd.conf", "LISTEN 127.0.0.1 99999\n", "upsd.conf:1: invalid port '99999'"),
    ("upsd.conf", "MAXAGE soon\n", "upsd.conf:1: MAXAGE expects a positive number"),
    ("upsd.conf", "LISTEN 127.0.0.1 3493\nALLOW 10.0.0.300/8\n", "upsd.conf:2: ALLOW: '10.0.0.300/8'"),
    ("upsd.users", "[admin]\n  password = x\n  upsmon boss\n", "upsd.users:3: upsmon: unknown role 'boss'"),
]


@pytest.mark.parametrize(("fname", "text", "message"), BROKEN, ids=[b[2][:30] for b in BROKEN])
def test_broken_config_exits_2_with_file_and_line(
    tmp_path: Path, fname: str, text: str, message: str
) -> None:
    cfg = make_cfg(tmp_path)
    cfg.write()
    (cfg.etc / fname).write_text(text)
    p = serve("--config-dir", str(cfg.etc))
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert str(cfg.etc / fname.split(":")[0]) in p.stderr
    assert "Traceback" not in p.stderr


def test_missing_files(tmp_path: Path) -> None:
    p = serve("--config-dir", str(tmp_path / "nope"))
    assert p.returncode == 2 and "configuration directory not found" in p.stderr
    cfg = make_cfg(tmp_path)
    cfg.write()
    (cfg.etc / "upsd.conf").unlink()
    p = serve("--config-dir", str(cfg.etc))
    assert p.returncode == 2 and "upsd.conf: file not found" in p.stderr


def test_allow_no_device(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, ALLOW_NO_DEVICE="true")
    cfg.ups.clear()
    with BridgeProcess.start(cfg):
        assert ask(cfg.port, "LIST UPS") == "BEGIN LIST UPS\nEND LIST UPS\n"


def test_legacy_acl_lines_warned_and_ignored(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    cfg.upsd_extra = "ACL all 0.0.0.0/0\nACCEPT all\nREJECT all\n"
    cfg.users += "[old]\n  password = x\n  allowfrom = localhost\n"
    with BridgeProcess.start(cfg) as br:
        assert ask(cfg.port, "GET VAR test ups.status") == 'VAR test ups.status "OL CHRG"\n'
        log = br.log()
    assert "ACL is no longer supported" in log and "REJECT is no longer supported" in log
    assert "allowfrom in upsd.users is no longer used" in log


def test_port_in_use(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    cfg.write()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", cfg.port))
        s.listen()
        p = serve("--config-dir", str(cfg.etc))
    assert p.returncode == 1
    assert f"cannot listen on 127.0.0.1:{cfg.port}" in p.stderr and "in use" in p.stderr
    assert "Traceback" not in p.stderr


def test_sigterm_exit_code_zero(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    br = BridgeProcess.start(cfg)
    assert br.stop() == 0


# ---- listeners and limits -----------------------------------------------------------


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_several_listeners_ipv4_and_ipv6(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    second = realnut.free_port()
    cfg.upsd_extra = f"LISTEN 127.0.0.1 {second}\n"
    if _has_ipv6():
        cfg.upsd_extra += f"LISTEN ::1 {cfg.port}\n"
    with BridgeProcess.start(cfg):
        for port in (cfg.port, second):
            assert ask(port, "GET VAR test battery.charge") == 'VAR test battery.charge "97"\n'
        if _has_ipv6():
            assert (
                ask(cfg.port, "LIST UPS", host="::1") == 'BEGIN LIST UPS\nUPS test "Test UPS"\nEND LIST UPS\n'
            )
            with socket.create_connection(("::1", cfg.port)) as s:
                s.sendall(b"USERNAME monsecondary\nPASSWORD ms\nLOGIN test\n")
                time.sleep(0.3)
                assert ask(cfg.port, "LIST CLIENT test").splitlines()[1] == "CLIENT test ::1"


def test_default_listen_is_localhost_only(tmp_path: Path) -> None:
    from nutbridge.config.upsd_conf import UpsdConf

    hosts = {lst.host for lst in UpsdConf().listeners()}
    assert hosts == {"127.0.0.1", "::1"}


def test_maxconn(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, MAXCONN="3")
    with BridgeProcess.start(cfg) as br:
        time.sleep(0.3)  # let the start-up probe's connection close first
        held = [socket.create_connection(("127.0.0.1", cfg.port), timeout=5) for _ in range(3)]
        for h in held:  # a round trip proves each one is registered
            h.sendall(b"NETVER\n")
            assert h.recv(100) == b"1.3\n", br.log()
        with socket.create_connection(("127.0.0.1", cfg.port), timeout=3) as extra:
            extra.sendall(b"VER\n")
            try:
                data = extra.recv(100)
            except ConnectionResetError:
                data = b""
            assert data == b""
        held[0].close()
        time.sleep(0.3)
        assert ask(cfg.port, "NETVER") == "1.3\n"
        for h in held[1:]:
            h.close()
        assert "Maximum number of connections (3)" in br.log()


def test_idle_client_dropped_and_logout_closes(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg, env={"NUTBRIDGE_IDLE_TIMEOUT": "1"}):
        with socket.create_connection(("127.0.0.1", cfg.port), timeout=10) as s:
            s.sendall(b"USERNAME monsecondary\nPASSWORD ms\nLOGIN test\n")
            t0 = time.monotonic()
            buf = b""
            while chunk := s.recv(100):
                buf += chunk
            waited = time.monotonic() - t0
        assert buf == b"OK\nOK\nOK\n"
        assert 1.0 <= waited < 6.0
        # the dropped LOGIN no longer counts
        assert ask(cfg.port, "GET NUMLOGINS test") == "NUMLOGINS test 0\n"
        with socket.create_connection(("127.0.0.1", cfg.port), timeout=5) as s:
            s.sendall(b"LOGOUT\n")
            assert s.recv(100) == b"OK Goodbye\n"
            assert s.recv(100) == b""


# ---- staleness and recovery ----------------------------------------------------------


def test_driver_not_connected_then_stale_then_recovered(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    dev = cfg.root / "test.dev"
    missing = cfg.root / "later.dev"
    cfg.add_ups("later", driver="dummy-ups", port=str(missing))
    with BridgeProcess.start(cfg, env={}):
        realnut.wait_ready_ups(cfg.port, ["test"])
        # never reached its device: like a NUT driver that is not running
        assert ask(cfg.port, "GET VAR later ups.status") == "ERR DRIVER-NOT-CONNECTED\n"
        missing.write_text(DEV)
        realnut.wait_ready_ups(cfg.port, ["later"], timeout=20)
        # the device goes away: stale (not "not connected"), then back by itself
        dev.unlink()
        deadline = time.monotonic() + 20
        while ask(cfg.port, "GET VAR test ups.status") != "ERR DATA-STALE\n":
            assert time.monotonic() < deadline, "never went stale"
            time.sleep(0.2)
        assert ask(cfg.port, "LIST UPS").count("UPS ") == 2  # still listed
        assert ask(cfg.port, "GET UPSDESC test") == 'UPSDESC test "Test UPS"\n'
        dev.write_text(DEV.replace("97", "55"))
        t0 = time.monotonic()
        while ask(cfg.port, "GET VAR test battery.charge") != 'VAR test battery.charge "55"\n':
            assert time.monotonic() - t0 < 20, "did not recover"
            time.sleep(0.2)


def test_maxage_and_wait_in_core() -> None:
    """MAXAGE: a driver that stops reporting goes DATA-STALE; WAIT before the first dump."""
    from nutbridge.config.upsd_conf import UpsdConf
    from nutbridge.config.users import Users
    from nutbridge.server.core import Core
    from nutbridge.state import Device

    dev = Device("u")
    core = Core([dev], Users(), UpsdConf(maxage=5))
    s = core.connect("127.0.0.1")
    assert core.handle(s, ("GET", "VAR", "u", "ups.status")) == "ERR DRIVER-NOT-CONNECTED\n"
    dev.driver_connected()
    assert core.handle(s, ("GET", "VAR", "u", "ups.status")) == 'VAR u ups.status "WAIT"\n'
    assert (
        core.handle(s, ("LIST", "VAR", "u")) == 'BEGIN LIST VAR u\nVAR u ups.status "WAIT"\nEND LIST VAR u\n'
    )
    dev.set("ups.status", "OL")
    dev.data_ok()
    assert core.handle(s, ("GET", "VAR", "u", "ups.status")) == 'VAR u ups.status "OL"\n'
    dev.last_heard -= 6.5  # past MAXAGE + upstream's one-second grace
    assert core.handle(s, ("GET", "VAR", "u", "ups.status")) == "ERR DATA-STALE\n"
    dev.heard()
    assert core.handle(s, ("GET", "VAR", "u", "ups.status")) == 'VAR u ups.status "OL"\n'


# ---- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "crt.pem"
    p = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        capture_output=True,
    )
    realnut.require("openssl command", p.returncode == 0)
    both = d / "server.pem"
    both.write_text(crt.read_text() + key.read_text())
    return {"cert": crt, "pem": both}


def test_starttls_verified_and_pinned(tmp_path: Path, certs: dict[str, Path]) -> None:
    cfg = make_cfg(tmp_path, CERTFILE=str(certs["pem"]))
    with BridgeProcess.start(cfg):

        async def go() -> None:
            opts = TLSOptions(mode=TLSMode.REQUIRE, cafile=str(certs["cert"]))
            async with NutClient("127.0.0.1", cfg.port, tls=opts) as c:
                assert c.tls_active
                assert await c.get_var("test", "battery.charge") == "97"
                with pytest.raises(NutError) as err:
                    await c.command("STARTTLS")
                assert err.value.code == "ALREADY-SSL-MODE"
            import ssl

            der = ssl.PEM_cert_to_DER_cert(certs["cert"].read_text())
            from nutbridge.client.tls import fingerprint

            async with NutClient(
                "127.0.0.1", cfg.port, tls=TLSOptions(mode=TLSMode.REQUIRE, pin_sha256=fingerprint(der))
            ) as c:
                assert await c.get_var("test", "ups.status") == "OL CHRG"
            with pytest.raises((NutError, OSError)):
                async with NutClient(
                    "127.0.0.1", cfg.port, tls=TLSOptions(mode=TLSMode.REQUIRE, pin_sha256="00" * 32)
                ) as c:
                    await c.get_var("test", "ups.status")

        asyncio.run(go())
        # plaintext clients are still served on the same port
        assert ask(cfg.port, "GET VAR test battery.charge") == 'VAR test battery.charge "97"\n'


def test_real_upsc_over_starttls(tmp_path: Path, certs: dict[str, Path]) -> None:
    upsc = realnut.require_client("upsc")
    cfg = make_cfg(tmp_path, CERTFILE=str(certs["pem"]))
    with BridgeProcess.start(cfg) as br:
        p = realnut.run_tool([upsc, f"test@127.0.0.1:{cfg.port}", "battery.charge"])
        assert p.stdout == b"97\n", p.stderr
        assert "TLS handshake" not in br.log()


def test_without_certfile_starttls_not_configured(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg):
        assert ask(cfg.port, "STARTTLS") == "ERR FEATURE-NOT-CONFIGURED\n"


def test_bad_certfile_refuses_to_start(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, CERTFILE=str(tmp_path / "missing.pem"))
    cfg.write()
    p = serve("--config-dir", str(cfg.etc))
    assert p.returncode == 2 and "CERTFILE" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
    cfg.upsd_extra = f"CERTFILE {bad}\n"
    cfg.write()
    p = serve("--config-dir", str(cfg.etc))
    assert p.returncode == 2 and "CERTFILE" in p.stderr and "Traceback" not in p.stderr


# ---- host-based access control --------------------------------------------------------


def test_allow_networks_refuse_other_clients(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, ALLOW="10.0.0.0/8 192.168.1.0/24")
    with BridgeProcess.start(cfg) as br:
        with socket.create_connection(("127.0.0.1", cfg.port), timeout=3) as s:
            s.sendall(b"VER\n")
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        assert "Rejecting TCP connection from 127.0.0.1" in br.log()
    cfg.upsd_extra = "ALLOW 10.0.0.0/8 127.0.0.1\n"
    with BridgeProcess.start(cfg):
        assert ask(cfg.port, "NETVER") == "1.3\n"


def test_per_user_from_networks(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    cfg.users += (
        "[remoteonly]\n  password = ro\n  actions = SET\n  instcmds = ALL\n  from = 192.168.0.0/16\n"
        "[localok]\n  password = lo\n  instcmds = ALL\n  from = 127.0.0.0/8 ::1\n"
    )
    with BridgeProcess.start(cfg) as br:
        assert ask(cfg.port, "USERNAME remoteonly", "PASSWORD ro", "INSTCMD test load.off").endswith(
            "ERR ACCESS-DENIED\n"
        )
        assert ask(cfg.port, "USERNAME localok", "PASSWORD lo", "INSTCMD test load.off").endswith("\nOK\n")
        assert "User remoteonly refused from 127.0.0.1" in br.log()


def test_hosts_allow_deny_like_tcp_wrappers(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("# nothing allowed explicitly\nsshd: ALL\n")
    deny.write_text("upsd: ALL EXCEPT 10.\n")
    env = {"NUTBRIDGE_HOSTS_ALLOW": str(allow), "NUTBRIDGE_HOSTS_DENY": str(deny)}
    with BridgeProcess.start(cfg, env=env):
        # reading needs no authentication and is not wrapped (as upstream)
        assert ask(cfg.port, "GET VAR test battery.charge") == 'VAR test battery.charge "97"\n'
        assert (
            ask(cfg.port, "USERNAME admin", "PASSWORD s3cr3t", "INSTCMD test load.off")
            == "OK\nOK\nERR ACCESS-DENIED\n"
        )
    allow.write_text("upsd: 127.0.0.1 [::1]/128\n")
    with BridgeProcess.start(cfg, env=env):
        assert ask(cfg.port, "USERNAME admin", "PASSWORD s3cr3t", "INSTCMD test load.off") == "OK\nOK\nOK\n"


def test_reload_users_on_sighup(tmp_path: Path) -> None:
    import signal

    cfg = make_cfg(tmp_path)
    with BridgeProcess.start(cfg) as br:
        assert ask(cfg.port, "USERNAME newbie", "PASSWORD n3w", "INSTCMD test load.off").endswith(
            "ERR ACCESS-DENIED\n"
        )
        (cfg.etc / "upsd.users").write_text(cfg.users + "[newbie]\n  password = n3w\n  instcmds = ALL\n")
        br.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert ask(cfg.port, "USERNAME newbie", "PASSWORD n3w", "INSTCMD test load.off") == "OK\nOK\nOK\n"



def _wait_list(port: int, want: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = ask(port, "LIST UPS")
        if got == want:
            return got
        time.sleep(0.1)
    raise AssertionError(f"LIST UPS is {got!r}, wanted {want!r}")


def test_reload_ups_conf_on_sighup(tmp_path: Path) -> None:
    """SIGHUP re-reads ups.conf: new UPS start, removed ones go, changed ones restart."""
    import signal

    cfg = make_cfg(tmp_path)
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto", desc="Sim")
    with BridgeProcess.start(cfg) as br:
        realnut.wait_ready_ups(cfg.port, ["test", "sim"])
        before = ask(cfg.port, "GET VAR sim ups.status")
        assert before.startswith("VAR sim ups.status")
        del cfg.ups["test"]
        cfg.add_ups("extra", driver="dummy-ups", port=str(cfg.root / "test.dev"), desc="Extra")
        cfg.ups["sim"]["desc"] = "Sim, renamed"
        cfg.write()
        br.proc.send_signal(signal.SIGHUP)
        _wait_list(cfg.port, 'BEGIN LIST UPS\nUPS sim "Sim, renamed"\nUPS extra "Extra"\nEND LIST UPS\n')
        realnut.wait_ready_ups(cfg.port, ["extra", "sim"])
        assert ask(cfg.port, "GET VAR test ups.status") == "ERR UNKNOWN-UPS\n"
        assert ask(cfg.port, "GET VAR extra battery.charge").startswith("VAR extra battery.charge")

        # A broken ups.conf changes nothing.
        (cfg.etc / "ups.conf").write_text("[broken\n")
        br.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert "LIST UPS" in ask(cfg.port, "LIST UPS") and "UPS extra" in ask(cfg.port, "LIST UPS")
        assert "reload failed, keeping the running configuration" in br.log()


def test_passwords_never_logged(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    secret = "Sup3r-S3cret-Pa55"
    cfg.users += f"[vip]\n  password = {secret}\n  actions = SET FSD\n  instcmds = ALL\n"
    with BridgeProcess.start(cfg, args=["-D", "-D"]) as br:
        ask(
            cfg.port,
            "USERNAME vip",
            f"PASSWORD {secret}",
            "INSTCMD test load.off",
            'SET VAR test ups.id "x"',
            "FSD test",
        )
        ask(cfg.port, "USERNAME vip", "PASSWORD wrong-Pa55", "INSTCMD test load.off")
        time.sleep(0.3)
        log = br.log()
    assert "vip" in log  # the actions are audited...
    assert secret not in log and "wrong-Pa55" not in log  # ...without credentials


def test_embedded_default_serves_a_controllable_simulated_ups() -> None:
    """No configuration: one simulated UPS, an admin password printed once."""
    import re

    port = realnut.free_port()
    e = dict(os.environ)
    e.pop("NUT_CONFPATH", None)
    e["PYTHONPATH"] = str(REPO / "bridge")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nutbridge", "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=e,
        text=True,
    )
    try:
        banner = "".join(proc.stdout.readline() for _ in range(5))  # type: ignore[union-attr]
        m = re.search(r"-p (\S+) sim@127\.0\.0\.1:(\d+) test\.failure\.start", banner)
        assert m and int(m.group(2)) == port, banner
        assert ask(port, "LIST UPS") == 'BEGIN LIST UPS\nUPS sim "NUT Bridge simulated UPS"\nEND LIST UPS\n'
        assert ask(port, "GET VAR sim ups.status") == 'VAR sim ups.status "OL"\n'
        # unauthenticated control is refused; the printed password works
        assert ask(port, "INSTCMD sim test.failure.start") == "ERR USERNAME-REQUIRED\n"
        assert ask(port, "USERNAME admin", "PASSWORD wrong", "INSTCMD sim test.failure.start").endswith(
            "ERR ACCESS-DENIED\n"
        )
        assert ask(port, "USERNAME admin", f"PASSWORD {m.group(1)}", "INSTCMD sim test.failure.start") == (
            "OK\nOK\nOK\n"
        )
        deadline = time.monotonic() + 10
        while "OB" not in ask(port, "GET VAR sim ups.status"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        err = proc.stderr.read()  # type: ignore[union-attr]
    assert "Traceback" not in err
    assert m.group(1) not in err  # the password is shown to the user, never logged


def test_tracking_lifecycle_and_trackingdelay() -> None:
    """PENDING until the driver answers, then its result; purged after TRACKINGDELAY."""
    from nutbridge.config.upsd_conf import UpsdConf
    from nutbridge.config.users import User, Users
    from nutbridge.server.core import Core
    from nutbridge.state import Device

    queued: list[tuple[str, str | None]] = []
    dev = Device("u")
    dev.set("ups.status", "OL")
    dev.add_cmd("load.off")
    dev.set("ups.id", "x", rw=True, string=True, aux=8)
    dev.data_ok()
    users = Users({"a": User("a", "p", {"set"}, {"all"})})
    core = Core(
        [dev],
        users,
        UpsdConf(trackingdelay=60),
        dispatcher=lambda kind, d, name, value, tid: queued.append((kind, tid)) or True,
    )
    s = core.connect("127.0.0.1")
    for words in (("USERNAME", "a"), ("PASSWORD", "p")):
        assert core.handle(s, words) == "OK\n"
    assert core.handle(s, ("INSTCMD", "u", "load.off")) == "OK\n"  # tracking off: no id
    assert core.handle(s, ("GET", "TRACKING", "x")) == "ERR FEATURE-NOT-CONFIGURED\n"
    assert core.handle(s, ("SET", "TRACKING", "ON")) == "OK\n"
    ids = []
    for words in (
        ("INSTCMD", "u", "load.off"),
        ("SET", "VAR", "u", "ups.id", "y"),
        ("INSTCMD", "u", "load.off"),
    ):
        ans = core.handle(s, words)
        assert ans.startswith("OK TRACKING ") and len(ans) == len("OK TRACKING ") + 36 + 1
        ids.append(ans.split()[2])
    assert [q[1] for q in queued[1:]] == ids
    assert core.handle(s, ("GET", "TRACKING", ids[0].lower())) == "PENDING\n"  # ids match case-insensitively
    core.tracking_result(ids[0], 0)
    core.tracking_result(ids[1], 3)
    core.tracking_result(ids[2], 2)
    assert [core.handle(s, ("GET", "TRACKING", i)) for i in ids] == [
        "SUCCESS\n",
        "ERR FAILED\n",
        "ERR INVALID-ARGUMENT\n",
    ]
    assert core.handle(s, ("GET", "TRACKING", "00000000-0000-0000-0000-000000000000")) == "ERR UNKNOWN\n"
    # TRACKINGDELAY: entries older than it are gone
    for tid in ids:
        status, expiry = core.tracking[tid]
        core.tracking[tid] = (status, expiry - 61)
    assert core.handle(s, ("GET", "TRACKING", ids[0])) == "ERR UNKNOWN\n"
    assert core.tracking == {}
