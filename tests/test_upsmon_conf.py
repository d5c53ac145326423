"""upsmon.conf parsing (nutbridge.monitor.config) and notify messages/flags (nutbridge.monitor.notify)."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest

from nutbridge.config.parser import ConfigError
from nutbridge.monitor.config import MonitorSpec, UpsmonConf, parse_upsmon_conf, split_sys
from nutbridge.monitor.machine import Notify
from nutbridge.monitor.notify import (
    DEFAULT_FLAGS,
    NOTIFY_TYPES,
    NotifyFlag,
    format_message,
    format_notify,
    message_for,
)
from tests.support import realnut

FULL = r"""
# every keyword upsmon knows
MONITOR ups1@nas.lan:3494 1 monp "p@ss word" primary
MONITOR ups2@[::1]:3493 2 mons secret master
MONITOR ups3@[fe80::1] 0 mons secret secondary
MONITOR ups4 1 mons secret slave
MONITOR ups5@host 1 mons secret SECONDARY
MINSUPPLIES 2
POLLFREQ 7
POLLFREQALERT 3
DEADTIME 21
HOSTSYNC 30
FINALDELAY 0
SHUTDOWNCMD "/sbin/shutdown -h +0 'now please'"
NOTIFYCMD /usr/sbin/upssched
NOTIFYFLAG ONBATT SYSLOG+WALL+EXEC
NOTIFYFLAG online EXEC
NOTIFYFLAG REPLBATT IGNORE
NOTIFYMSG ONBATT "Power failure on %s, 100% sure"
NOTIFYMSG lowbatt "battery low: %s"
POWERDOWNFLAG /run/killpower
RBWARNTIME 3600
NOCOMMWARNTIME 60
OBLBDURATION 4
OFFDURATION -1
OVERDURATION 10
ALARMCRITICAL 0
RUN_AS_USER nut
CERTPATH /etc/nut/certs
CERTFILE /etc/nut/client.pem
CERTIDENT "my cert" "pw"
CERTHOST nas.lan "nas cert" 1 1
CERTVERIFY 1
FORCESSL 1
DEBUG_MIN 2
POLLFAIL_LOG_THROTTLE_MAX 10
SHUTDOWNEXIT no
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upsmon.conf"
    path.write_text(text)
    return path


def parse(tmp_path: Path, text: str, *, check: bool = True) -> UpsmonConf:
    return parse_upsmon_conf(write(tmp_path, text), check=check)


def test_full_file(tmp_path: Path) -> None:
    c = parse(tmp_path, FULL)
    assert c.monitors == [
        MonitorSpec("ups1@nas.lan:3494", "ups1", "nas.lan", 3494, 1, "monp", "p@ss word", True, 3),
        MonitorSpec("ups2@[::1]:3493", "ups2", "::1", 3493, 2, "mons", "secret", True, 4),
        MonitorSpec("ups3@[fe80::1]", "ups3", "fe80::1", 3493, 0, "mons", "secret", False, 5),
        MonitorSpec("ups4", "ups4", "localhost", 3493, 1, "mons", "secret", False, 6),
        MonitorSpec("ups5@host", "ups5", "host", 3493, 1, "mons", "secret", False, 7),
    ]
    assert (c.minsupplies, c.pollfreq, c.pollfreqalert, c.deadtime, c.hostsync, c.finaldelay) == (
        2, 7, 3, 21, 30, 0)
    assert (c.rbwarntime, c.nocommwarntime, c.oblbduration, c.offduration, c.overduration) == (
        3600, 60, 4, -1, 10)
    assert c.alarmcritical is False
    assert c.shutdowncmd == "/sbin/shutdown -h +0 'now please'"
    assert c.notifycmd == "/usr/sbin/upssched"
    assert c.powerdownflag == "/run/killpower"
    assert c.notifyflag == {
        "ONBATT": NotifyFlag.SYSLOG | NotifyFlag.WALL | NotifyFlag.EXEC,
        "ONLINE": NotifyFlag.EXEC,
        "REPLBATT": NotifyFlag.IGNORE,
    }
    assert c.notifymsg == {"ONBATT": "Power failure on %s, 100% sure", "LOWBATT": "battery low: %s"}
    assert (c.run_as_user, c.certpath, c.certfile) == ("nut", "/etc/nut/certs", "/etc/nut/client.pem")
    assert (c.certverify, c.forcessl, c.debug_min, c.pollfail_log_throttle_max, c.shutdownexit) == (
        True, True, 2, 10, -1)
    assert c.total_power == 5


def test_defaults(tmp_path: Path) -> None:
    c = parse(tmp_path, "MONITOR ups 1 u p primary\n")
    assert (c.minsupplies, c.pollfreq, c.pollfreqalert, c.deadtime, c.hostsync, c.finaldelay) == (
        1, 5, 5, 15, 15, 5)
    assert (c.rbwarntime, c.nocommwarntime, c.oblbduration, c.offduration, c.overduration) == (
        43200, 300, 0, 30, -1)
    assert c.alarmcritical is True
    assert c.shutdowncmd is None and c.notifycmd is None and c.powerdownflag is None
    assert c.notifyflag == {} and c.notifymsg == {}
    assert (c.certverify, c.forcessl, c.shutdownexit) == (False, False, 0)


@pytest.mark.parametrize(("word", "primary"), [
    ("primary", True), ("master", True), ("PRIMARY", True), ("Master", True),
    ("secondary", False), ("slave", False), ("Slave", False),
])
def test_primary_secondary_aliases(tmp_path: Path, word: str, primary: bool) -> None:
    (m,) = parse(tmp_path, f"MONITOR ups@h 1 u p {word}\n").monitors
    assert m.primary is primary


@pytest.mark.parametrize(("sys", "expected"), [
    ("ups", ("ups", "localhost", 3493)),
    ("ups@host", ("ups", "host", 3493)),
    ("ups@host:1234", ("ups", "host", 1234)),
    ("ups@127.0.0.1:3493", ("ups", "127.0.0.1", 3493)),
    ("ups@[::1]", ("ups", "::1", 3493)),
    ("ups@[::1]:3493", ("ups", "::1", 3493)),
    ("ups@[fe80::1%eth0]:9", ("ups", "fe80::1%eth0", 9)),
])
def test_split_sys(sys: str, expected: tuple[str, str, int]) -> None:
    assert split_sys(sys) == expected


@pytest.mark.parametrize(("sys", "why"), [
    ("@host", "empty UPS name"),
    ("ups@", "empty hostname"),
    ("ups:3493", "port specified, but not a hostname"),
    ("ups@host:", "invalid port"),
    ("ups@host:0", "invalid port"),
    ("ups@host:65536", "invalid port"),
    ("ups@host:http", "invalid port"),
    ("ups@::1", "brackets"),
    ("ups@[::1", "missing closing bracket"),
    ("ups@[::1]3493", "unexpected"),
    ("ups@[]", "empty hostname"),
])
def test_split_sys_errors(tmp_path: Path, sys: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        split_sys(sys)
    with pytest.raises(ConfigError, match=re.escape(why)) as err:
        parse(tmp_path, f"# first\nMONITOR {sys} 1 u p primary\n")
    assert err.value.line == 2


def test_quoted_commands(tmp_path: Path) -> None:
    c = parse(tmp_path, 'MONITOR u 1 a b primary\n'
                        'SHUTDOWNCMD "/usr/bin/systemctl poweroff --message=\\"UPS\\""\n'
                        'NOTIFYCMD "/usr/local/bin/notify me"\n'
                        'NOTIFYMSG ONLINE "mains back on \\"%s\\""\n')
    assert c.shutdowncmd == '/usr/bin/systemctl poweroff --message="UPS"'
    assert c.shutdowncmd_argv == ('/usr/bin/systemctl poweroff --message="UPS"',)
    assert c.notifycmd == "/usr/local/bin/notify me"
    assert c.notifymsg["ONLINE"] == 'mains back on "%s"'


def test_command_with_several_words(tmp_path: Path) -> None:
    """NUT >= 2.8.3 takes further words as separate arguments: keep each one intact for /bin/sh."""
    c = parse(tmp_path, "MONITOR u 1 a b primary\nSHUTDOWNCMD /sbin/shutdown -h \"+0 now\"\n"
                        "NOTIFYCMD /bin/notify \"two words\" \"it's\"\n")
    assert c.shutdowncmd_argv == ("/sbin/shutdown", "-h", "+0 now")
    assert c.shutdowncmd == "/sbin/shutdown -h '+0 now'"
    out = subprocess.run(["/bin/sh", "-c", f"printf '[%s]' {c.notifycmd}"], capture_output=True,
                         text=True, check=True).stdout
    assert out == "[/bin/notify][two words][it's]"


@pytest.mark.parametrize(("text", "flags"), [
    ("SYSLOG", NotifyFlag.SYSLOG),
    ("WALL", NotifyFlag.WALL),
    ("EXEC", NotifyFlag.EXEC),
    ("IGNORE", NotifyFlag.IGNORE),
    ("SYSLOG+WALL", NotifyFlag.SYSLOG | NotifyFlag.WALL),
    ("EXEC+SYSLOG", NotifyFlag.SYSLOG | NotifyFlag.EXEC),
    ("SYSLOG+WALL+EXEC", NotifyFlag.SYSLOG | NotifyFlag.WALL | NotifyFlag.EXEC),
    ("WALL+WALL", NotifyFlag.WALL),
    ("SYSLOG+IGNORE", NotifyFlag.SYSLOG | NotifyFlag.IGNORE),
])
def test_notifyflag_combinations(tmp_path: Path, text: str, flags: NotifyFlag) -> None:
    c = parse(tmp_path, f"MONITOR u 1 a b primary\nNOTIFYFLAG LOWBATT {text}\n")
    assert c.notifyflag == {"LOWBATT": flags}
    _, names = format_notify(c, Notify("LOWBATT", "u"))
    expected = set() if NotifyFlag.IGNORE in flags else {f.name for f in NotifyFlag if f in flags}
    assert names == expected
    # other types keep the default
    assert format_notify(c, Notify("ONBATT", "u"))[1] == {"SYSLOG", "WALL"}


@pytest.mark.parametrize(("line", "message"), [
    ("POLLFREQ abc", "POLLFREQ expects a whole number, not 'abc'"),
    ("POLLFREQ 0", "POLLFREQ must be at least 1"),
    ("DEADTIME -5", "DEADTIME must be at least 0"),
    ("MINSUPPLIES 1.5", "MINSUPPLIES expects a whole number"),
    ("HOSTSYNC", "HOSTSYNC expects a number"),
    ("FINALDELAY 5s", "FINALDELAY expects a whole number"),
    ("MONITOR ups@h 1 u p", "old 5-word syntax"),
    ("MONITOR ups@h 1 u", "MONITOR expects: ups[@host[:port]] powervalue user password"),
    ("MONITOR ups@h", "MONITOR expects"),
    ("MONITOR ups@h one u p primary", "MONITOR power value expects a whole number, not 'one'"),
    ("MONITOR ups@h -1 u p primary", "MONITOR power value must be at least 0"),
    ("MONITOR ups@h 1 u p primray", "type must be primary or secondary"),
    ("NOTIFYFLAG ONBATT SYSLOG+MAIL", "invalid flag 'MAIL'"),
    ("NOTIFYFLAG ONBATT syslog", "invalid flag 'syslog'"),
    ("NOTIFYFLAG ONBATT SYSLOG+", "invalid flag ''"),
    ("NOTIFYFLAG ONBATT", "NOTIFYFLAG expects a notify type and flags"),
    ("NOTIFYMSG ONBATT", "NOTIFYMSG expects a notify type and a message"),
    ("SHUTDOWNCMD", "SHUTDOWNCMD expects a command"),
    ("FORCESSL maybe", "FORCESSL expects 0 or 1"),
    ('NOTIFYMSG ONBATT "unterminated', "unterminated quoted string"),
])
def test_errors_carry_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"MONITOR ok@h 1 u p primary\n\n{line}\nPOLLFREQ 5\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        parse_upsmon_conf(path)
    assert (err.value.path, err.value.line) == (str(path), 3)
    assert str(err.value).startswith(f"{path}:3: ")


def test_unknown_keyword_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    c = parse(tmp_path, "MONITOR u 1 a b primary\nFUTUREKNOB 42\npollfreq 9\nNOTIFYMSG NOSUCH \"x\"\n"
                        "NOTIFYFLAG NOSUCH SYSLOG\n")
    assert c.pollfreq == 5  # keywords are case-sensitive, as upstream
    text = caplog.text
    assert "upsmon.conf:2: unknown upsmon.conf keyword 'FUTUREKNOB' ignored" in text
    assert "upsmon.conf:3: unknown upsmon.conf keyword 'pollfreq' ignored (keywords are upper case)" in text
    assert "upsmon.conf:4: 'NOSUCH' is not a valid notify event name" in text
    assert "upsmon.conf:5: invalid notify type [NOSUCH]" in text


def test_duplicate_monitor_keeps_the_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = parse(tmp_path, "MONITOR u@h 1 a b primary\nMONITOR u@h 2 c d secondary\n")
    assert [(m.power_value, m.primary) for m in c.monitors] == [(1, True)]
    assert "ignoring duplicate MONITOR u@h" in caplog.text


def test_insufficient_power(tmp_path: Path) -> None:
    """Upstream refuses to start when the power values can never reach MINSUPPLIES."""
    text = "MONITOR a@h 1 u p primary\nMONITOR b@h 0 u p secondary\nMINSUPPLIES 2\n"
    with pytest.raises(ConfigError, match="add up to 1, less than MINSUPPLIES 2"):
        parse(tmp_path, text)
    assert parse(tmp_path, text, check=False).minsupplies == 2
    # MINSUPPLIES 0: a monitoring-only host
    assert parse(tmp_path, "MONITOR a@h 0 u p secondary\nMINSUPPLIES 0\n").total_power == 0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        parse_upsmon_conf(tmp_path / "nope.conf")


SAMPLES = [Path("/etc/nut/upsmon.conf"), Path("/usr/share/doc/nut/upsmon.conf.sample")]


@pytest.mark.parametrize("sample", [p for p in SAMPLES if p.exists()] or [pytest.param(
    SAMPLES[0], marks=realnut.prerequisite("a packaged upsmon.conf (apt-get install nut-client)", False))])
def test_distribution_sample_file(tmp_path: Path, sample: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The packaged sample parses as is, and again with its commented-out examples enabled."""
    text = sample.read_text()
    c = parse_upsmon_conf(sample, check=False)
    assert c.monitors == [] and c.minsupplies == 1 and c.shutdowncmd
    # Enable the example NOTIFYMSG / NOTIFYFLAG / MONITOR lines of the sample.
    enabled = re.sub(r"(?m)^#\s*((?:NOTIFYMSG|NOTIFYFLAG) [A-Z_]+\s+\S.*"
                     r"|MONITOR \S+@\S+ \d+ \S+ \S+ (?:primary|secondary).*)$", r"\1", text)
    caplog.set_level(logging.WARNING)
    c = parse(tmp_path, enabled)
    assert len(c.monitors) >= 2 and c.notifymsg and c.notifyflag
    assert "not a valid notify event name" not in caplog.text
    assert "invalid notify type" not in caplog.text
    for ntype, template in c.notifymsg.items():
        # the sample documents the stock messages (its NOTECO text was never the binary's)
        if ntype != "NOTECO":
            assert NOTIFY_TYPES[ntype].message == template, ntype
    assert all(flags == DEFAULT_FLAGS for flags in c.notifyflag.values())


def _upsmon_binaries() -> list[Path]:
    found = []
    for p in (Path("/lib/nut/upsmon"), Path("/usr/lib/nut/upsmon"), Path("/usr/libexec/nut/upsmon"),
              Path("/usr/sbin/upsmon")):
        if p.exists() and p.read_bytes()[:4] == b"\x7fELF":
            found.append(p)
    return found


@pytest.mark.parametrize("binary", _upsmon_binaries() or [pytest.param(
    None, marks=realnut.prerequisite("NUT's upsmon binary (apt-get install nut-client)", False))])
def test_stock_messages_match_real_upsmon(binary: Path) -> None:
    """Every type the installed upsmon knows has our stock message, byte for byte."""
    version_out = subprocess.run([str(binary), "-V"], capture_output=True, text=True).stdout
    m = re.search(r"upsmon (\d+)\.(\d+)\.(\d+)", version_out)
    assert m, version_out
    version = tuple(int(x) for x in m.groups())
    blob = binary.read_bytes()
    checked = 0
    for t in NOTIFY_TYPES.values():
        if tuple(int(x) for x in t.since.split(".")) <= version:
            assert b"\0" + t.message.encode() + b"\0" in blob or t.message.encode() + b"\0" in blob, t.name
            assert t.name.encode() + b"\0" in blob, t.name
            checked += 1
    assert checked >= 10


def test_format_message() -> None:
    assert format_message("UPS %s on battery", "u@h") == "UPS u@h on battery"
    assert format_message("[%s] [%s]", "a", "b") == "[a] [b]"
    assert format_message("100%% %s", "x") == "100% x"
    # more placeholders than values, and printf directives we do not support: never crash
    assert format_message("%s %s %s %d 50%", "a") == "a   %d 50%"
    assert message_for("OTHER", "u@h", "FOO BAR") == \
        "UPS u@h: has at least one unclassified status token: [FOO BAR]"
    assert message_for("SHUTDOWN", "") == "Auto logout and shutdown proceeding"
    assert message_for("onbatt", "u", overrides={"ONBATT": "%s lost mains"}) == "u lost mains"


def test_format_notify_uses_notifymsg(tmp_path: Path) -> None:
    c = parse(tmp_path, FULL)
    assert format_notify(c, Notify("ONBATT", "ups1@nas.lan:3494")) == (
        "Power failure on ups1@nas.lan:3494, 100% sure", {"SYSLOG", "WALL", "EXEC"})
    assert format_notify(c, Notify("REPLBATT", "x")) == ("UPS x battery needs to be replaced", set())
    assert format_notify(c, Notify("ALARM", "x", "Replace battery!")) == (
        "UPS x: one or more active alarms: [Replace battery!]", {"SYSLOG", "WALL"})
