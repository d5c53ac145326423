"""Differential tests: the bridge's upsd against Debian's C upsd, byte for byte.

The same ups.conf (dummy-ups over NUT DDL dumps, without their #RW/#CMD comments, which
our dummy-ups would turn into writable variables), upsd.users and request scripts go to
both servers; the answers must be identical except for the documented differences
(docs/compatibility.md), which normalise() applies to both legs, here and nowhere else:

* VER and ``server.info``: the banner names NUT Bridge (whole line / value masked);
* ``server.version``: ours is always 2.8.5 (masked only when the installed NUT is another
  release);
* HELP: ours always has the 2.8.3+ text; with NUT < 2.8.3 (no PROTVER) the word PROTVER is
  dropped from the ``Commands:`` line, the rest is compared;
* ``driver.version``: ours names the bridge (masked);
* ``driver.state``: NUT 2.8.5's C dummy-ups flips it between quiet and updateinfo (masked).

``driver.version.internal`` is compared: our dummy-ups publishes the C revision it follows.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.server.core import NUT_COMPAT
from tests.support import realnut
from tests.support.realnut import NutConfig, converse

DDL = realnut.DDL_DIR
BATCH = 64

pytestmark = pytest.mark.interop


def ddl_files() -> list[Path]:
    return sorted(DDL.rglob("*.dev"))


def _strip_meta(src: Path, dst: Path) -> None:
    # #RW/#CMD lines are comments to the C dummy-ups; our extension reads them,
    # so both sides get a copy without them for a like-for-like comparison.
    lines = [ln for ln in src.read_text(errors="replace").splitlines()
             if not re.match(r"\s*#(RW|CMD):", ln)]
    dst.write_text("\n".join(lines) + "\n")


def wait_ready(port: int, names: list[str], timeout: float = 60.0) -> None:
    """Every UPS answers GET VAR ups.status with a value other than WAIT."""
    import time

    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        ans = converse(port, [f"GET VAR {n} ups.status" for n in pending]).decode().splitlines()
        pending = [n for n, a in zip(pending, ans, strict=False)
                   if not a.startswith("VAR ") or a.endswith('"WAIT"')]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"not ready: {pending[:5]}")
        if pending:
            time.sleep(0.3)


NUT = tuple(int(x) for x in realnut.nut_version().split(".") if x.isdigit())
_NORMALISE = [
    # NUT 2.8.5's driver core flips driver.state between quiet and updateinfo
    (re.compile(rb"^(VAR \S+ driver\.state )\"[^\"]*\"$", re.M | re.I), rb'\1"<state>"'),
    (re.compile(rb"^(VAR \S+ driver\.version )\"[^\"]*\"$", re.M | re.I), rb'\1"<version>"'),
    (re.compile(rb"^(VAR \S+ server\.info )\"[^\"]*\"$", re.M | re.I), rb'\1"<VER>"'),
    (re.compile(rb"^Network UPS Tools upsd .*$", re.M), b"<VER>"),
]
if realnut.nut_version() != NUT_COMPAT:
    _NORMALISE.append((re.compile(rb"^(VAR \S+ server\.version )\"[^\"]*\"$", re.M | re.I),
                       rb'\1"<version>"'))
if NUT < (2, 8, 3):
    _NORMALISE.append((re.compile(rb"^(Commands: HELP VER) PROTVER ", re.M), rb"\1 "))


def normalise(data: bytes) -> bytes:
    for rx, rep in _NORMALISE:
        data = rx.sub(rep, data)
    return data


def _vars(listing: bytes, ups: str) -> list[str]:
    out = []
    for ln in listing.decode(errors="replace").splitlines():
        parts = ln.split(" ", 3)
        if len(parts) >= 3 and parts[0] == "VAR" and parts[1] == ups:
            out.append(parts[2])
    return out


def ups_script(ups: str, names: list[str]) -> list[str]:
    lines = [f"LIST VAR {ups}", f"LIST RW {ups}", f"LIST CMD {ups}", f"GET UPSDESC {ups}",
             f"GET NUMLOGINS {ups}", f"LIST CLIENT {ups}", f"GET CMDDESC {ups} load.off",
             f"GET VAR {ups} ups.bogus.value", f"GET TYPE {ups} ups.bogus", f"LIST ENUM {ups} nope.x"]
    for n in names:
        lines += [f"GET VAR {ups} {n}", f"GET TYPE {ups} {n}", f"GET DESC {ups} {n}",
                  f"LIST ENUM {ups} {n}", f"LIST RANGE {ups} {n}"]
    # case-insensitive lookups echo the names as sent
    lines += [f"GET VAR {ups.upper()} UPS.STATUS", f"list var {ups.upper()}"]
    return lines


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[tuple[NutConfig, NutConfig, list[str]]]]:
    """Batches of DDL dumps, each served by one C upsd and one bridge."""
    realnut.require_daemon("upsd")
    realnut.require_daemon("dummy-ups")
    files = ddl_files()
    assert len(files) > 300, f"DDL corpus not found at {DDL}"
    root = tmp_path_factory.mktemp("diff")
    batches = []
    for b in range(0, len(files), BATCH):
        data = root / f"data{b}"
        data.mkdir()
        c_cfg = NutConfig(root / f"c{b}")
        p_cfg = NutConfig(root / f"py{b}")
        names = []
        for i, f in enumerate(files[b : b + BATCH]):
            dst = data / f"u{b + i}.dev"
            _strip_meta(f, dst)
            name = f"u{b + i}"
            names.append(name)
            for cfg in (c_cfg, p_cfg):
                cfg.add_ups(name, driver="dummy-ups", port=str(dst), desc=f.stem[:60])
        batches.append((c_cfg, p_cfg, names))
    yield batches


def _run_bridge(cfg: NutConfig) -> realnut.BridgeProcess:
    return realnut.BridgeProcess.start(cfg)


@pytest.mark.timeout(900)
def test_every_ddl_dump_same_bytes(servers: list[tuple[NutConfig, NutConfig, list[str]]]) -> None:
    compared = 0
    for c_cfg, p_cfg, names in servers:
        with realnut.c_upsd(c_cfg, wait_ready=False), _run_bridge(p_cfg) as br:
            wait_ready(c_cfg.port, names)
            wait_ready(p_cfg.port, names)
            for name in names:
                listing = converse(c_cfg.port, [f"LIST VAR {name}"])
                script = ups_script(name, _vars(listing, name))
                want = normalise(converse(c_cfg.port, script))
                got = normalise(converse(p_cfg.port, script))
                # the comparison must have bitten: a full listing and per-variable answers
                assert want.startswith(f"BEGIN LIST VAR {name}\n".encode()), want[:200]
                assert want.count(b"\nTYPE ") >= len(script) // 5 - 3
                if got != want:
                    _explain(name, script, want, got, br.log())
                compared += 1
    assert compared == len(ddl_files())


def _explain(name: str, script: list[str], want: bytes, got: bytes, log: str) -> None:
    import difflib

    diff = "\n".join(difflib.unified_diff(want.decode(errors="replace").splitlines(),
                                          got.decode(errors="replace").splitlines(),
                                          "C upsd", "bridge", lineterm="", n=2))
    pytest.fail(f"{name}: answers differ\n{diff[:6000]}\n--- bridge log tail ---\n{log[-2000:]}")


# ---- protocol edge cases and the auth matrix ---------------------------------

PROTOCOL_SCRIPTS: list[list[str]] = [
    # words, case, quoting, comments, separators
    ["", "  ", "# just a comment", "get var dummy ups.status", "GET\tVAR\tdummy\tups.status",
     "GET VAR dummy ups.status\r", 'GET VAR "dummy" "ups.status"', "GET VAR du\\mmy ups.status",
     "GET VAR dummy ups.status # trailing comment", "GET VAR dummy ups.status extra words here",
     "GET VAR du=mmy ups.status", "GET VAR dummy ups.stat\x01us", 'GET VAR dummy "ups.st\\"atus"'],
    # argument counts and unknown subcommands
    ["GET", "GET VAR", "GET VAR dummy", "GET FOO a b", "GET UPSDESC", "GET NUMLOGINS",
     "LIST", "LIST VAR", "LIST CLIENTS", "LIST ENUM dummy", "LIST FOO dummy x", "LIST UPS extra",
     "SET", "SET VAR", "SET VAR dummy", "INSTCMD", "INSTCMD dummy", "USERNAME", "PASSWORD",
     "USERNAME a b", "LOGIN", "FSD", "PRIMARY", "BOGUS", "NETVER x", "PROTVER", "NETVER", "VER x",
     "VER", "HELP", "HELP x"],  # the banners: exercise their normalisations
    # unknown UPS everywhere; server.* without a UPS check
    ["GET VAR nope ups.status", "GET VAR nope server.version", "GET VAR nope server.info",
     "GET VAR nope server.bogus", "GET TYPE nope x", "GET DESC nope x", "GET UPSDESC nope",
     "GET NUMLOGINS nope", "LIST VAR nope", "LIST RW nope", "LIST CMD nope", "LIST CLIENT nope",
     "LIST ENUM nope x", "LIST RANGE nope x"],
    # tracking without login/permission
    ["GET TRACKING", "GET TRACKING 1234", "SET TRACKING ON", "USERNAME reader", "PASSWORD r34d",
     "SET TRACKING MAYBE", "SET TRACKING on", "GET TRACKING", "GET TRACKING 00000000-0000",
     "SET TRACKING OFF", "GET TRACKING", "USERNAME again", "PASSWORD again"],
    # a down driver: DRIVER-NOT-CONNECTED vs what still answers
    ["GET VAR down ups.status", "LIST VAR down", "GET UPSDESC down", "LIST CLIENT down",
     "GET NUMLOGINS down", "GET TYPE down ups.status", "GET DESC down ups.status", "LIST RW down",
     "LIST CMD down", "LIST ENUM down x", "INSTCMD down load.off", "USERNAME admin", "PASSWORD s3cr3t",
     "INSTCMD down load.off", "SET VAR down ups.id x", "LOGIN down", "FSD down"],
    # STARTTLS without a certificate, then normal traffic
    ["STARTTLS", "GET VAR dummy ups.status"],
    # LIST UPS
    ["LIST UPS"],
]

USERS = [("admin", "s3cr3t"), ("admin", "wrong"), ("reader", "r34d"), ("tester", "t3st"),
         ("monprimary", "mp"), ("monmaster", "mm"), ("monsecondary", "ms"), ("monslave", "msl"),
         ("nobody", "x")]


def auth_scripts() -> list[list[str]]:
    scripts = []
    for user, pw in USERS:
        scripts.append([
            "LOGIN dummy", "INSTCMD dummy load.off", f"USERNAME {user}", "LOGIN dummy",
            f"PASSWORD {pw}", "INSTCMD dummy load.off", "INSTCMD dummy load.off 10",
            "INSTCMD dummy load.off 10 extra", "INSTCMD dummy test.battery.start",
            "INSTCMD dummy bogus.cmd", "INSTCMD nope load.off",
            'SET VAR dummy ups.id "bridge"', 'SET VAR dummy ups.id "this value is far too long for sixteen"',
            'SET VAR dummy driver.name "x"', 'SET VAR dummy nope.var "x"', 'SET VAR dummy battery.charge ""',
            "SET VAR nope ups.id x", "SET FOO dummy", "PRIMARY dummy", "MASTER dummy", "PRIMARY nope",
            "LOGIN dummy", "LOGIN dummy", "LOGIN nope", "GET NUMLOGINS dummy", "LIST CLIENT dummy",
        ])
    return scripts


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NutConfig, NutConfig]]:
    realnut.require_daemon("upsd")
    root = tmp_path_factory.mktemp("pair")
    dev = root / "dummy.dev"
    dev.write_text("ups.status: OL CHRG\nbattery.charge: 90\nups.id: Crash \\#1\nups.mfr: Dummy\n"
                   'ups.model: "Quoted \\"Model\\""\ninput.voltage: 230.1\nups.temperature: 25\n')
    c_cfg, p_cfg = NutConfig(root / "c"), NutConfig(root / "py")
    for cfg in (c_cfg, p_cfg):
        cfg.add_ups("dummy", driver="dummy-ups", port=str(dev), desc='Crash "Dummy" #1')
        cfg.add_ups("fsdups", driver="dummy-ups", port=str(dev))
        cfg.add_ups("down", driver="dummy-ups", port=str(root / "missing.dev"))
    with realnut.c_upsd(c_cfg, wait_ready=False), realnut.BridgeProcess.start(p_cfg):
        wait_ready(c_cfg.port, ["dummy", "fsdups"])
        wait_ready(p_cfg.port, ["dummy", "fsdups"])
        yield c_cfg, p_cfg


@pytest.mark.parametrize("script", PROTOCOL_SCRIPTS + auth_scripts(), ids=lambda s: s[0][:24] or "empty")
def test_script_same_bytes(pair: tuple[NutConfig, NutConfig], script: list[str]) -> None:
    c_cfg, p_cfg = pair
    want = normalise(converse(c_cfg.port, script))
    got = normalise(converse(p_cfg.port, script))
    assert got.decode(errors="replace").splitlines() == want.decode(errors="replace").splitlines()
    assert got == want


def test_fsd_latch_same_bytes(pair: tuple[NutConfig, NutConfig]) -> None:
    c_cfg, p_cfg = pair
    script = ["USERNAME monprimary", "PASSWORD mp", "LOGIN fsdups", "FSD fsdups", "GET VAR fsdups ups.status",
              "LIST VAR fsdups", "LIST RW fsdups", "GET NUMLOGINS fsdups", "FSD fsdups"]
    want = normalise(converse(c_cfg.port, script))
    got = normalise(converse(p_cfg.port, script))
    assert got.decode().splitlines() == want.decode().splitlines()
    assert b'"FSD OL CHRG"' in got
    # the login ended with the connection: NUMLOGINS back to 0 on both
    after = [realnut.query(port, "GET NUMLOGINS fsdups") for port in (p_cfg.port, c_cfg.port)]
    assert after[0] == after[1] == b"NUMLOGINS fsdups 0\n"


def test_parse_error_drops_rest_of_segment(pair: tuple[NutConfig, NutConfig]) -> None:
    """An unescaped # in quotes: no answer, and the rest of that read is discarded."""
    c_cfg, p_cfg = pair
    for port in (c_cfg.port, p_cfg.port):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b'GET VAR dummy "ups.#status"\nGET VAR dummy ups.status\n')
            s.settimeout(1.0)
            with pytest.raises(TimeoutError):
                s.recv(100)
            s.sendall(b"GET VAR dummy ups.temperature\n")
            s.settimeout(3)
            assert s.recv(100) == b'VAR dummy ups.temperature "25"\n'


def test_tracking_ids(pair: tuple[NutConfig, NutConfig]) -> None:
    _, p_cfg = pair
    ans = realnut.query(p_cfg.port, "USERNAME admin", "PASSWORD s3cr3t", "SET TRACKING ON",
                        "INSTCMD dummy load.off").decode()
    m = re.search(r"OK TRACKING ([0-9A-F-]{36})\n$", ans)
    assert m, ans
    tid = m.group(1)
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}", tid)
