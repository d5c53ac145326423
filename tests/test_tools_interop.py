"""Our upsc/upscmd/upsrw/upslog against NUT's real tools, byte for byte.

Both run against the same real C upsd + dummy-ups. The installed NUT version (2.8.0 on
Debian 12, 2.8.5 in sid) selects our compatibility profile through NUTBRIDGE_NUT_COMPAT.
Exit code, stdout and stderr must be identical after these normalisations, applied to both
sides and nowhere else:

* the version banner line ``Network UPS Tools ...`` (stdout and stderr; upslog's stdout):
  ours names nutbridge (docs/compatibility.md, Tools);
* the value after ``driver.state`` in stdout: NUT 2.8.5's C dummy-ups flips it between quiet
  and updateinfo, and the two tools read it at different moments;
* upslog: the time stamp (``YYYYMMDD HHMMSS``) opening each line of the default format, as
  the two runs log at different times.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import realnut

pytestmark = pytest.mark.interop

DDL = realnut.DDL_DIR
DEVICES = realnut.DDL_SAMPLES
BANNER = re.compile(rb"^Network UPS Tools .*$", re.M)
# NUT 2.8.5's dummy-ups flips driver.state between "quiet" and "updateinfo".
VOLATILE = re.compile(rb"(driver\.state\W+)[a-z.]+")


def _sid_upsd_shim() -> None:
    # Debian sid ships the real upsd as /usr/sbin/upsd (not a wrapper, unlike
    # Debian 12); realnut only looks in the libexec directories.
    sbin = Path("/usr/sbin/upsd")
    if realnut.daemon("upsd") is None and sbin.is_file() and sbin.read_bytes()[:4] == b"\x7fELF":
        realnut.NUT_LIBEXEC.append(Path("/usr/sbin"))


_sid_upsd_shim()


def installed_version() -> str:
    """'2.8.0', '2.8.5'...: upsc -V prints on stderr in 2.8.0, with ' release' in 2.8.5."""
    exe = realnut.client("upsc")
    if not exe:
        return ""
    r = subprocess.run([exe, "-V"], capture_output=True, text=True)
    m = re.search(r"(\d+\.\d+\.\d+)", r.stdout + r.stderr)
    return m.group(1) if m else realnut.nut_version()


def compat_for(version: str) -> str:
    parts = tuple(int(x) for x in version.split(".")) if version else (2, 8, 5)
    return "2.8.0" if parts < (2, 8, 3) else "2.8.5"


VERSION = installed_version()
ENV = {
    "NUTBRIDGE_NUT_COMPAT": compat_for(VERSION),
    "NUT_QUIET_INIT_SSL": "true",
    "TZ": "UTC",
    "LANG": "C",
}


def ours(tool: str) -> list[str]:
    return [sys.executable, "-m", "nutbridge", tool]


def masked(r: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes, bytes]:
    stdout = VOLATILE.sub(rb"\1STATE", BANNER.sub(b"BANNER", r.stdout))
    return r.returncode, stdout, BANNER.sub(b"BANNER", r.stderr)


def compare(tool: str, args: list[str], env: dict[str, str] | None = None,
            input: bytes = b"") -> tuple[int, bytes, bytes]:
    real = realnut.require_client(tool)
    e = dict(ENV, **(env or {}))
    # Run it by bare name, as a user would: getopt messages start with argv[0].
    e["PATH"] = f"{os.path.dirname(real)}:{os.environ.get('PATH', '')}"
    theirs = masked(realnut.run_tool([tool, *args], env=e, input=input))
    mine = masked(realnut.run_tool([*ours(tool), *args], env=e, input=input))
    assert mine == theirs, f"{tool} {' '.join(args)}"
    return mine


@pytest.fixture(scope="module")
def upsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realnut.NutConfig]:
    realnut.require("NUT DDL dumps", DDL.is_dir())
    cfg = realnut.NutConfig(tmp_path_factory.mktemp("nut"))
    for name, dev in DEVICES.items():
        cfg.add_ups(name, driver="dummy-ups", port=str(DDL / dev), desc=f'{name} "unit" #1')
    cfg.ups["eaton"].pop("desc")
    with realnut.c_upsd(cfg) as running:
        yield running


@pytest.fixture(scope="module")
def nodriver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realnut.NutConfig]:
    """A upsd whose drivers are not running: every UPS is DRIVER-NOT-CONNECTED."""
    cfg = realnut.NutConfig(tmp_path_factory.mktemp("nut-nodrv"))
    cfg.add_ups("gone", driver="dummy-ups", port=str(DDL / DEVICES["apc"]))
    with realnut.c_upsd(cfg, drivers=False) as running:
        yield running


def hp(cfg: realnut.NutConfig) -> str:
    return f"localhost:{cfg.port}"


# -- usage, version, option errors (no server needed) -------------------------------


@pytest.mark.parametrize("tool", ["upsc", "upscmd", "upsrw", "upslog"])
@pytest.mark.parametrize("args", [["-h"], [], ["-Z"], ["-V"]])
def test_usage_and_version(tool: str, args: list[str]) -> None:
    compare(tool, args)


# -- upsc ---------------------------------------------------------------------------


@pytest.mark.parametrize("ups", list(DEVICES))
def test_upsc_dump(upsd: realnut.NutConfig, ups: str) -> None:
    rc, out, _ = compare("upsc", [f"{ups}@{hp(upsd)}"])
    assert rc == 0 and b"ups.status: " in out


def test_upsc_modes(upsd: realnut.NutConfig) -> None:
    h = hp(upsd)
    assert compare("upsc", ["-l", h])[1].split() == list(map(str.encode, DEVICES))
    assert b'apc: apc "unit" #1' in compare("upsc", ["-L", h])[1]
    assert compare("upsc", [f"apc@{h}", "ups.status"])[1] == b"OL\n"
    compare("upsc", [f"walker@{h}", "driver.name"])
    compare("upsc", [f"apc@{h}", "server.version"])
    compare("upsc", ["-c", f"apc@{h}"])
    compare("upsc", [f"APC@{h}", "UPS.STATUS"])


@pytest.mark.parametrize("args", [
    ["nosuch@{h}"], ["nosuch@{h}", "ups.status"], ["apc@{h}", "ups.nosuch"], ["apc@{h}", "nodot"],
    ["-c", "nosuch@{h}"], ["apc@localhost:1"], ["-l", "localhost:1"], ["-L", "localhost:1"],
    ["apc@"], ["apc@nosuchhost.invalid"], ["-c"],
])
def test_upsc_errors(upsd: realnut.NutConfig, args: list[str]) -> None:
    rc, _, err = compare("upsc", [a.format(h=hp(upsd)) for a in args])
    assert rc == 1 and err


def test_upsc_driver_not_connected(nodriver: realnut.NutConfig) -> None:
    _, _, err = compare("upsc", [f"gone@{hp(nodriver)}"])
    assert err.endswith(b"Error: Driver not connected\n")
    compare("upsc", [f"gone@{hp(nodriver)}", "ups.status"])
    compare("upsrw", [f"gone@{hp(nodriver)}"])
    compare("upscmd", ["-l", f"gone@{hp(nodriver)}"])


def test_upsc_init_ssl_notice(upsd: realnut.NutConfig) -> None:
    # 2.8.0 always prints the NSS notice; 2.8.5 unless NUT_QUIET_INIT_SSL=true.
    compare("upsc", [f"apc@{hp(upsd)}", "ups.status"], env={"NUT_QUIET_INIT_SSL": "false"})


@pytest.mark.parametrize("args", [
    ["-l", "{h}"], ["-L", "{h}"], ["apc@{h}"], ["apc@{h}", "ups.status"], ["apc@{h}", "ups.nosuch"],
    ["nosuch@{h}"], ["-c", "apc@{h}"], ["-c", "nosuch@{h}"], ["apc@localhost:1"], [],
])
def test_upsc_json(upsd: realnut.NutConfig, args: list[str]) -> None:
    # 2.8.0 has no -j (prints usage); 2.8.5 prints JSON. Both must match.
    compare("upsc", ["-j", *(a.format(h=hp(upsd)) for a in args)])


# -- upscmd -------------------------------------------------------------------------


def test_upscmd_list(upsd: realnut.NutConfig) -> None:
    for ups in DEVICES:
        compare("upscmd", ["-l", f"{ups}@{hp(upsd)}"])
    compare("upscmd", ["-l", f"nosuch@{hp(upsd)}"])
    compare("upscmd", ["-l", "apc@localhost:1"])
    compare("upscmd", ["-l", "apc@"])


@pytest.mark.parametrize("args", [
    ["-u", "admin", "-p", "s3cr3t", "apc@{h}", "load.off"],
    ["-u", "admin", "-p", "bad", "apc@{h}", "load.off"],
    ["-u", "reader", "-p", "r34d", "apc@{h}", "load.off"],
    ["-u", "admin", "-p", "s3cr3t", "apc@{h}", "no.such"],
    ["-u", "admin", "-p", "s3cr3t", "apc@{h}", "nodot"],
    ["-u", "admin", "-p", "s3cr3t", "nosuch@{h}", "load.off"],
    ["-u", "admin", "-p", "s3cr3t", "-w", "-t", "5", "apc@{h}", "load.off", "5"],
    ["-u", "admin", "-p", "s3cr3t", "-w", "apc@{h}", "no.such"],
    ["-u", "admin", "apc@{h}", "load.off"],  # password prompt, EOF
    ["apc@{h}", "load.off"],  # username prompt, EOF
    ["apc@{h}"],
])
def test_upscmd_run(upsd: realnut.NutConfig, args: list[str]) -> None:
    compare("upscmd", [a.format(h=hp(upsd)) for a in args])


def test_upscmd_ok_warning(upsd: realnut.NutConfig) -> None:
    args = ["-u", "admin", "-p", "s3cr3t", f"apc@{hp(upsd)}", "load.off"]
    compare("upscmd", args, env={"NUT_QUIET_OK_NOTRACKING": "true"})
    compare("upscmd", args, input=b"")


# -- upsrw --------------------------------------------------------------------------


@pytest.mark.parametrize("ups", list(DEVICES))
def test_upsrw_list(upsd: realnut.NutConfig, ups: str) -> None:
    rc, out, _ = compare("upsrw", [f"{ups}@{hp(upsd)}"])
    assert rc == 0 and b"Type: " in out


@pytest.mark.parametrize("args", [
    ["-s", "ups.beeper.status=enabled", "-u", "admin", "-p", "s3cr3t", "apc@{h}"],
    ["-s", "ups.beeper.status=enabled", "-u", "admin", "-p", "s3cr3t", "-w", "apc@{h}"],
    ["-s", "ups.beeper.status=enabled", "-u", "admin", "-p", "bad", "apc@{h}"],
    ["-s", "ups.beeper.status=enabled", "-u", "reader", "-p", "r34d", "apc@{h}"],
    ["-s", "ups.nosuch=1", "-u", "admin", "-p", "s3cr3t", "apc@{h}"],
    ["-s", "ups.mfr.date=" + "x" * 40, "-u", "admin", "-p", "s3cr3t", "apc@{h}"],
    ["-s", "nodot=1", "-u", "admin", "-p", "s3cr3t", "apc@{h}"],
    ["-s", "ups.beeper.status=enabled", "nosuch@{h}"],
    ["-s", "ups.beeper.status=enabled", "apc@{h}"],  # prompts, EOF
    ["-s", "ups.beeper.status=enabled", "-u", "admin", "-p", "s3cr3t", "apc@localhost:1"],
    ["nosuch@{h}"], ["apc@"],
])
def test_upsrw_set(upsd: realnut.NutConfig, args: list[str]) -> None:
    compare("upsrw", [a.format(h=hp(upsd)) for a in args])


def test_upsrw_readonly_and_too_long(upsd: realnut.NutConfig) -> None:
    # The C dummy-ups makes every variable RW STRING:n, so READONLY and TOO-LONG
    # need a variable upsd itself owns (server.*) or a long value on a STRING var.
    _, _, err = compare("upsrw", ["-s", "ups.mfr.date=" + "9" * 40, "-u", "admin", "-p", "s3cr3t",
                                  f"eaton@{hp(upsd)}"])
    assert err.startswith(b"Unexpected response from upsd: ERR ")


# -- upslog -------------------------------------------------------------------------


def _upslog_run(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Wait for the first line, force a second with SIGUSR1, stop with SIGTERM."""
    e = dict(os.environ, **ENV)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    assert p.stdout is not None
    buf = b""
    deadline = time.monotonic() + 20
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
        lines = buf.count(b"\n")
        if lines >= 3 and not sent:
            # A USR1 between a log line and the next sleep is not seen until the
            # sleep ends (in NUT's upslog): give the tool time to go to sleep.
            time.sleep(0.5)
            p.send_signal(signal.SIGUSR1)
            sent = True
        if lines >= 4:
            break
    # Let the tool go back to sleep: a TERM that interrupts the sleep logs a line.
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=10)
    return p.returncode, BANNER.sub(b"BANNER", buf + rest), err


@pytest.mark.parametrize("fmt,ups", [
    ("%UPSHOST% [%VAR ups.status%] %VAR battery.charge% %VAR nosuch.var% %VAR nodot% %FOO% %% x%",
     "apc"),
    ("%TIME @Y%|%VAR ups.status%|%upshost%|%t|", "walker"),
    ("", "nosuch"),
    ("", "eaton"),
])
def test_upslog(upsd: realnut.NutConfig, fmt: str, ups: str) -> None:
    real = realnut.require_client("upslog")
    args = ["-s", f"{ups}@{hp(upsd)}", "-l", "-", "-i", "30"] + (["-f", fmt] if fmt else [])
    theirs = _upslog_run([real, *args])
    mine = _upslog_run([*ours("upslog"), *args])
    # The default format starts with the time: mask it.
    stamp = re.compile(rb"^\d{8} \d{6} ", re.M)
    assert (mine[0], stamp.sub(b"T ", mine[1]), mine[2]) == \
        (theirs[0], stamp.sub(b"T ", theirs[1]), theirs[2])
    assert mine[1].count(b"\n") >= 4


def test_upslog_connection_refused() -> None:
    real = realnut.require_client("upslog")
    args = ["-s", "apc@localhost:1", "-l", "-", "-i", "30", "-f", "%UPSHOST% %VAR ups.status%"]
    assert _upslog_run([*ours("upslog"), *args]) == _upslog_run([real, *args])


@pytest.mark.parametrize("args", [["-s", "apc@localhost:1"], ["-Z"], []])
def test_upslog_errors(args: list[str]) -> None:
    compare("upslog", args)
