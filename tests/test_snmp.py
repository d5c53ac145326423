"""snmp-ups against snmpsim agents: our driver vs Debian's snmp-ups, v3, faults.

Every UPS recording NUT's snmp-ups understands (drivers.md §4.7, plus the project's APC
Smart-UPS/NMC recording) is served by one snmpsim process; for each, the bridge's variables
must equal what ``snmp-ups -d 1`` prints for the same agent. The oracle is NUT 2.8.0 on the
host and 2.8.5 in sid; differences that depend on the NUT version are written to accept both.
The comparison (_differences) leaves out, and nothing else:

* IGNORED: ``driver.version`` (ours names the bridge), ``driver.parameter.*`` (the options each
  side was started with), ``driver.debug`` (``-d 1``), ``driver.flag.*`` and ``driver.state``
  (NUT 2.8.5 flips it); ``driver.version.internal`` and ``driver.version.data`` (MIB name and
  table revision, per release profile) are compared;
* KNOWN_DIFFERENCES, per MIB and variable, each listed with its reason in docs/snmp.md:
  ``device.description`` (NUT cuts sysDescr at 127 characters), apcc ``ups.delay.shutdown``
  (NUT multiplies TimeTicks by the row's length: 270 for 90 s), mge ``ups.mfr`` /
  ``device.mfr`` (2.8.5's table says EATON, 2.8.0's Eaton, which we follow).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BridgeServer
from tests.support import realnut, serialsim, snmpsim

realnut.require_module("pysnmp", "nutbridge-ups[snmp]")

# recording, mibs option (None = auto), the MIB NUT picks, SNMP version
CASES: list[tuple[str, str | None, str, str]] = [
    ("apc-smartups-nmc", None, "apcc", "v2c"),
    ("apc-smartups-nmc", "ietf", "ietf", "v2c"),
    ("eaton-93e-80", None, "mge", "v2c"),
    ("eaton-93e-80", "ietf", "ietf", "v2c"),
    ("eaton-9px-partial", None, "mge", "v2c"),
    ("huawei-gse200m", None, "huawei", "v2c"),
    ("phoenixtec-power", None, "xppc", "v2c"),
    ("eastpower-istars-swv053", None, "tripplite", "v2c"),
    ("ingrasys-power-switch", None, "tripplite", "v2c"),
    # v1 (NUT's default): a missing OID fails the whole PDU with noSuchName
    ("apc-smartups-nmc", None, "apcc", "v1"),
    ("eaton-93e-80", "ietf", "ietf", "v1"),
]
RECORDINGS = sorted({c[0] for c in CASES})

# bookkeeping that legitimately differs: our version, the parameters each side was started
# with, -d 1's driver.debug, driver.flag.*, and driver.state (NUT 2.8.5 flips it)
IGNORED = re.compile(r"^driver\.(parameter\..*|version|debug|flag\..*|state)$")

Check = Callable[[str | None, str | None], bool]
Start = Callable[..., BridgeServer]  # the bridge_server fixture


def _truncated(nut: str | None, ours: str | None) -> bool:
    # NUT cuts strings at SU_INFOSIZE (128 bytes incl. NUL); we publish the whole value
    return nut is not None and ours is not None and len(nut) == 127 and ours.startswith(nut)


# (MIB or "*", variable) -> (accepts (nut value, our value), reason). Mirrored in docs/snmp.md.
KNOWN_DIFFERENCES: dict[tuple[str, str], tuple[Check, str]] = {
    ("*", "device.description"): (_truncated, "NUT truncates sysDescr at 127 characters"),
    ("apcc", "ups.delay.shutdown"): (
        lambda nut, ours: ours == "90" and nut in ("270", "90"),
        "upsAdvConfigShutoffDelay 9000 TimeTicks = 90 s; NUT multiplies by the row's length (3): 270",
    ),
    ("mge", "ups.mfr"): (
        lambda nut, ours: ours == "Eaton" and nut in ("Eaton", "EATON"),
        "NUT 2.8.5's mge table says EATON, 2.8.0 (which we follow) Eaton",
    ),
    ("mge", "device.mfr"): (
        lambda nut, ours: ours == "Eaton" and nut in ("Eaton", "EATON"),
        "mirrors ups.mfr",
    ),
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[snmpsim.Agent]:
    with snmpsim.running(tmp_path_factory.mktemp("snmp"), RECORDINGS) as a:
        yield a


def _snmp_ups(cfg: realnut.NutConfig, name: str, port: int, **opts: str) -> None:
    cfg.add_ups(name, driver="snmp-ups", port=f"127.0.0.1:{port}", pollfreq="1", **opts)


def _list_vars(port: int, ups: str, timeout: float = 10.0) -> dict[str, str]:
    # read up to END LIST VAR (a quiet-time read can cut a long list on a loaded machine)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"LIST VAR {ups}\n".encode())
        buf = b""
        while b"END LIST VAR" not in buf and not buf.startswith(b"ERR"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    out: dict[str, str] = {}
    for line in buf.decode(errors="replace").splitlines():
        if line.startswith(f"VAR {ups} "):
            _, _, key, value = line.split(" ", 3)
            out[key] = value.strip().strip('"').replace('\\"', '"').replace("\\\\", "\\")
    return out


def _wait_vars(port: int, ups: str, timeout: float = 20.0) -> dict[str, str]:
    serialsim.wait_var(port, ups, "ups.status", lambda v: bool(v), timeout=timeout)
    serialsim.wait_var(port, ups, "driver.version.data", lambda v: bool(v), timeout=timeout)
    # settled: the variable set no longer changes between two polls (pollfreq 1 s)
    last = _list_vars(port, ups)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.2)
        now = _list_vars(port, ups)
        if set(now) == set(last):
            return now
        last = now
    return last


def _differences(mib: str, nut: dict[str, str],
                 ours: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    diffs = {}
    for key in sorted(set(nut) | set(ours)):
        if IGNORED.match(key):
            continue
        a, b = nut.get(key), ours.get(key)
        if a == b:
            continue
        known = KNOWN_DIFFERENCES.get((mib, key)) or KNOWN_DIFFERENCES.get(("*", key))
        if known and known[0](a, b):
            continue
        diffs[key] = (a, b)
    return diffs


@pytest.mark.parametrize(("recording", "mibs", "mib", "version"), CASES,
                         ids=[f"{r}-{m or 'auto'}-{v}" for r, m, _, v in CASES])
def test_same_variables_as_snmp_ups(agent: snmpsim.Agent, bridge_server: Start, tmp_path: Path,
                                    recording: str, mibs: str | None, mib: str, version: str) -> None:
    nut, out = snmpsim.snmp_ups_dump(agent.port, recording, mibs=mibs, version=version)
    assert nut, f"snmp-ups printed nothing for {recording}:\n{out[-2000:]}"
    assert nut["driver.version.data"].split()[0] == mib, nut["driver.version.data"]

    cfg = realnut.NutConfig(tmp_path / "nut")
    opts = {"community": recording, "snmp_version": version}
    if mibs:
        opts["mibs"] = mibs
    _snmp_ups(cfg, "ups", agent.port, **opts)
    srv = bridge_server(cfg)
    ours = _wait_vars(srv.port, "ups")

    # mibs=auto detection picked the same MIB as NUT
    assert ours["driver.version.data"].split()[0] == mib
    assert _differences(mib, nut, ours) == {}
    assert ours["ups.status"] == nut["ups.status"]


V3_USER = snmpsim.V3User("nutmon", "authpass-123", "SHA", "privpass-456", "AES")
V3_OPTS = {"snmp_version": "v3", "secLevel": "authPriv", "secName": "nutmon", "authProtocol": "SHA",
           "authPassword": "authpass-123", "privProtocol": "AES", "privPassword": "privpass-456"}
# other protocol pairs: (NUT authProtocol, NUT privProtocol, snmpsim's auth, snmpsim's priv).
# net-snmp (hence NUT) extends AES192/256 keys the "Blumenthal" way: snmpsim's *BLMT.
V3_MORE = [("MD5", "DES", "MD5", "DES"), ("SHA256", "AES256", "SHA256", "AES256BLMT"),
           ("SHA512", "AES192", "SHA512", "AES192BLMT")]
V3_USERS = [V3_USER] + [snmpsim.V3User(f"nut-{a}-{p}".lower(), "authpass-123", sa, "privpass-456", sp)
                        for a, p, sa, sp in V3_MORE]


@pytest.fixture(scope="module")
def v3_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[snmpsim.Agent]:
    # NUT and our driver send the empty v3 context: it is served from apc-smartups-nmc
    with snmpsim.running(tmp_path_factory.mktemp("snmpv3"), ["apc-smartups-nmc"], v3_users=V3_USERS,
                         v3_contextless="apc-smartups-nmc") as a:
        yield a


def test_v3_authpriv_sha_aes(v3_agent: snmpsim.Agent, bridge_server: Start, tmp_path: Path) -> None:
    nut, out = snmpsim.snmp_ups_dump(v3_agent.port, "", version="v3",
                                     extra=[(k, v) for k, v in V3_OPTS.items() if k != "snmp_version"])
    assert nut.get("ups.model") == "Smart-UPS 1500", out[-2000:]

    cfg = realnut.NutConfig(tmp_path / "nut")
    _snmp_ups(cfg, "ups", v3_agent.port, **V3_OPTS)
    srv = bridge_server(cfg)
    ours = _wait_vars(srv.port, "ups")
    assert ours["driver.version.data"].split()[0] == "apcc"
    assert _differences("apcc", nut, ours) == {}
    assert "authpass-123" not in srv.log() and "privpass-456" not in srv.log()


@pytest.mark.parametrize(("auth", "priv"), [(a, p) for a, p, _, _ in V3_MORE])
def test_v3_other_protocols(v3_agent: snmpsim.Agent, bridge_server: Start, tmp_path: Path,
                            auth: str, priv: str) -> None:
    opts = dict(V3_OPTS, secName=f"nut-{auth}-{priv}".lower(), authProtocol=auth, privProtocol=priv)
    nut, out = snmpsim.snmp_ups_dump(v3_agent.port, "", version="v3",
                                     extra=[(k, v) for k, v in opts.items() if k != "snmp_version"])
    assert nut.get("ups.model") == "Smart-UPS 1500", out[-2000:]
    cfg = realnut.NutConfig(tmp_path / "nut")
    _snmp_ups(cfg, "ups", v3_agent.port, **opts)
    srv = bridge_server(cfg)
    assert _wait_vars(srv.port, "ups")["ups.model"] == "Smart-UPS 1500"


@pytest.mark.parametrize("wrong", ["authPassword", "privPassword", "secName"])
def test_v3_wrong_credentials_fail_clearly(v3_agent: snmpsim.Agent, bridge_server: Start, tmp_path: Path,
                                           wrong: str) -> None:
    opts = dict(V3_OPTS, **{wrong: "wrong-secret-789"})
    cfg = realnut.NutConfig(tmp_path / "nut")
    _snmp_ups(cfg, "bad", v3_agent.port, snmp_timeout="0.5", snmp_retries="0", **opts)
    srv = bridge_server(cfg)
    deadline = time.monotonic() + 20
    while not re.search(r"\[bad\].*(SNMP|snmp)", srv.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert serialsim.get_var(srv.port, "bad", "ups.status") is None
    answer = realnut.query(srv.port, "GET VAR bad ups.status").decode()
    assert answer.startswith(("ERR DATA-STALE", "ERR DRIVER-NOT-CONNECTED")), answer
    bad = "\n".join(line for line in srv.log().splitlines() if "[bad]" in line)
    # the agent answers with a USM report: the reason is named, not just "timeout"
    reason = r"(?i)digest|decrypt|cipher|unknown (usm )?user|user name|authentication"
    assert re.search(reason, bad), bad[-3000:]
    assert "wrong-secret-789" not in srv.log() and "privpass-456" not in srv.log()


def test_v3_same_user_name_different_keys_on_two_agents(tmp_path: Path, bridge_server: Start) -> None:
    """Two agents, one secName, different keys (common: every NMC has user "nut"): each UPS
    keeps its own credentials (a shared USM table would make them overwrite each other)."""
    users = {"a": snmpsim.V3User("nut", "authpass-AAA", "SHA", "privpass-AAA", "AES"),
             "b": snmpsim.V3User("nut", "authpass-BBB", "SHA", "privpass-BBB", "AES")}
    with snmpsim.running(tmp_path / "a", ["apc-smartups-nmc"], v3_users=[users["a"]],
                         v3_contextless="apc-smartups-nmc") as a, \
         snmpsim.running(tmp_path / "b", ["eaton-93e-80"], v3_users=[users["b"]],
                         v3_contextless="eaton-93e-80") as b:
        cfg = realnut.NutConfig(tmp_path / "nut")
        for name, agent in (("a", a), ("b", b)):
            key = name.upper() * 3
            _snmp_ups(cfg, name, agent.port, **dict(V3_OPTS, secName="nut",
                                                     authPassword=f"authpass-{key}",
                                                     privPassword=f"privpass-{key}"))
        srv = bridge_server(cfg)
        assert _wait_vars(srv.port, "a")["ups.model"] == "Smart-UPS 1500"
        assert _wait_vars(srv.port, "b")["ups.model"] == "93E HV"
        time.sleep(3)  # several polls of both: still fresh, no digest errors
        for name in "ab":
            answer = realnut.query(srv.port, f"GET VAR {name} ups.status").decode()
            assert answer.startswith("VAR"), answer
        assert not re.search(r"(?i)digest|decrypt", srv.log()), srv.log()[-3000:]


def test_agent_down_stale_then_recovery(tmp_path: Path, bridge_server: Start) -> None:
    with snmpsim.running(tmp_path / "agent", ["apc-smartups-nmc"]) as agent:
        cfg = realnut.NutConfig(tmp_path / "nut")
        _snmp_ups(cfg, "ups", agent.port, community="apc-smartups-nmc", snmp_version="v2c",
                  snmp_timeout="0.5", snmp_retries="1")
        srv = bridge_server(cfg)
        serialsim.wait_var(srv.port, "ups", "ups.status", "OL")

        agent.stop()
        stale = serialsim.wait_var(srv.port, "ups", "ups.status", None, timeout=30)
        answer = realnut.query(srv.port, "GET VAR ups ups.status").decode()
        assert answer.startswith("ERR DATA-STALE"), answer

        agent.start()
        recovery = serialsim.wait_var(srv.port, "ups", "ups.status", "OL", timeout=60)
        print(f"\nSNMP agent stopped -> DATA-STALE after {stale:.1f} s; "
              f"agent back -> OL after {recovery:.1f} s")
        assert _list_vars(srv.port, "ups")["ups.model"] == "Smart-UPS 1500"


def test_per_oid_errors_do_not_fail_the_poll(tmp_path: Path, bridge_server: Start) -> None:
    """After init, one OID vanishes (noSuchObject) and one changes type: the rest keeps updating."""
    with snmpsim.running(tmp_path / "agent", ["apc-smartups-nmc"]) as agent:
        cfg = realnut.NutConfig(tmp_path / "nut")
        _snmp_ups(cfg, "ups", agent.port, community="apc-smartups-nmc", snmp_version="v2c")
        srv = bridge_server(cfg)
        serialsim.wait_var(srv.port, "ups", "ups.load", "23.10")
        assert serialsim.get_var(srv.port, "ups", "input.voltage") == "230.10"

        data = agent.data_dir / "apc-smartups-nmc.snmprec"
        text = data.read_text()
        text = re.sub(r"^1\.3\.6\.1\.4\.1\.318\.1\.1\.1\.3\.3\.1\.0\|.*\n", "", text, flags=re.M)  # input V
        text = text.replace("1.3.6.1.4.1.318.1.1.1.2.3.2.0|66|271", "1.3.6.1.4.1.318.1.1.1.2.3.2.0|4|warm")
        text = text.replace("1.3.6.1.4.1.318.1.1.1.4.3.3.0|66|231", "1.3.6.1.4.1.318.1.1.1.4.3.3.0|66|456")
        data.write_text(text)
        agent.restart()

        serialsim.wait_var(srv.port, "ups", "ups.load", "45.60", timeout=30)
        # the poll that saw the errors published the rest: never stale, status intact
        for _ in range(5):
            assert serialsim.get_var(srv.port, "ups", "ups.status") == "OL"
            time.sleep(0.3)
        vars_ = _list_vars(srv.port, "ups")
        assert vars_["battery.charge"] == "100"
        assert vars_.get("ups.temperature") in (None, "27.10")  # last good value or dropped, never "warm"
