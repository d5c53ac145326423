"""One profile, one release: ``NUTBRIDGE_NUT_COMPAT`` selects what upsd says about itself.

Under each profile the bridge's ``VER``, ``GET VAR <ups> server.info``, ``server.version`` and
``HELP`` must be what that release's C upsd answers, with only ``(NUT Bridge <version>)``
inserted after the release number (a documented difference). The answers of both releases
were recorded from Debian's upsd (2.8.0 on Debian 12, 2.8.5 in sid); the release installed
next to the tests is also asked live, so a recording that went wrong cannot pass.

The serial drivers' part of the profile (Megatec "I" layout, battery.voltage format,
DISCHRG) is in tests/test_parity_serial_profile.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nutbridge.compat import COMPAT_ENV, SUPPORTED
from tests.support import realnut
from tests.support.realnut import NutConfig

LINES = ["VER", "GET VAR ups server.info", "GET VAR ups server.version", "HELP", "PROTVER"]

#: what Debian's C upsd answers to LINES, per release (recorded; see module doc)
RECORDED: dict[str, bytes] = {
    "2.8.0": b"Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"
             b'VAR ups server.info "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"\n'
             b'VAR ups server.version "2.8.0"\n'
             b"Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
             b"1.3\n",
    "2.8.5": b"Network UPS Tools upsd 2.8.5 - https://www.networkupstools.org/historic/v2.8.5/index.html\n"
             b'VAR ups server.info "Network UPS Tools upsd 2.8.5 - '
             b'https://www.networkupstools.org/historic/v2.8.5/index.html"\n'
             b'VAR ups server.version "2.8.5"\n'
             b"Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
             b"1.3\n",
}
OURS = re.compile(rb" \(NUT Bridge [^)]*\)")


def _cfg(root: Path) -> NutConfig:
    cfg = NutConfig(root)
    root.mkdir(parents=True, exist_ok=True)
    dev = root / "ups.dev"
    dev.write_text("ups.status: OL\n")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev))
    return cfg


@pytest.mark.parametrize("profile", SUPPORTED)
def test_upsd_says_its_profiles_release(tmp_path: Path, profile: str) -> None:
    cfg = _cfg(tmp_path / "p")
    with realnut.BridgeProcess.start(cfg, env={COMPAT_ENV: profile}):
        realnut.wait_ready_ups(cfg.port, ["ups"])
        got = realnut.query(cfg.port, *LINES)
    assert got.count(b"(NUT Bridge ") == 2, got  # VER and server.info say who answers
    assert OURS.sub(b"", got) == RECORDED[profile]


def test_recording_matches_installed_upsd(tmp_path: Path) -> None:
    installed = realnut.nut_version()
    realnut.require(f"a NUT release the bridge has a profile for (installed: {installed!r})",
                    installed in SUPPORTED)
    cfg = _cfg(tmp_path / "c")
    with realnut.c_upsd(cfg):
        assert realnut.query(cfg.port, *LINES) == RECORDED[installed]
