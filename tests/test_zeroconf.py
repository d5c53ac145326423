"""Zeroconf advertisement (`_nut._tcp.local.`) and the server id, against real processes.

The bridges run as ``nutbridge serve`` subprocesses; a real python-zeroconf browser in
the test process finds them by multicast (tests/support/mdns.py). The state directory's
rules: tests/test_statedir.py; the TXT ``tls_sha256``: tests/test_tls_auto.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from nutbridge import __version__
from nutbridge.statedir import StateDir

from .support.mdns import NutBrowser, lan_ipv4
from .support.realnut import BridgeProcess, NutConfig

ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _start(tmp: Path, name: str, *args: str, upsd_extra: str = "") -> BridgeProcess:
    """``nutbridge serve ARGS`` ("{port}" in ARGS: the bridge's port) with one simulated UPS."""
    cfg = NutConfig(tmp / name)
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    cfg.upsd_extra = upsd_extra
    return BridgeProcess.start(cfg, [a.format(port=cfg.port) for a in args])


async def _wait_log(proc: BridgeProcess, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{proc.log()}"
        await asyncio.sleep(0.05)


async def test_advertised_only_when_reachable(tmp_path: Path) -> None:
    """0.0.0.0 is advertised with the LAN addresses; loopback-only and --no-zeroconf are not.

    All three start together, so the two that must stay silent had as long to
    (wrongly) register as the one that is found.
    """
    lan = lan_ipv4()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    unwritable = blocker / "state"
    with (
        _start(tmp_path, "wild", "--listen", "0.0.0.0:{port}", "--state-dir", str(unwritable)) as wild,
        _start(tmp_path, "lo", "--state-dir", str(tmp_path / "lo-state")) as lo,
        _start(tmp_path, "off", "--listen", f"{lan}:{{port}}", "--listen", "127.0.0.1:{port}",
               "--no-zeroconf", "--state-dir", str(tmp_path / "off-state")) as off,
    ):
        async with NutBrowser() as browser:
            info = await browser.find(lambda i: i.port == wild.cfg.port)
            props = info.decoded_properties
            # The state directory cannot be created: the id is derived, and stable.
            assert props["id"] == StateDir(unwritable, wild.cfg.etc).server_id
            assert ID_RE.match(props["id"] or "")
            assert props == {"txtvers": "1", "vendor": "nut-bridge", "id": props["id"],
                             "version": __version__, "protocol": "1.3", "push": "1"}
            assert lan in info.parsed_addresses()
            assert not any(a.startswith("127.") or a == "::1" for a in info.parsed_addresses())
            assert info.name.startswith("NUT Bridge on ")
            await asyncio.sleep(1.0)
            ports = {i.port for i in await browser.services()}
            assert lo.cfg.port not in ports
            assert off.cfg.port not in ports
        await _wait_log(lo, "zeroconf: not advertised (upsd listens on loopback only)")
        assert "zeroconf" not in off.log()
        assert wild.log().count("no writable state directory") == 1
        # ... so no certificate could be kept: no STARTTLS, no tls_sha256 (checked above)
        assert "STARTTLS is not offered" in wild.log()
        # Nothing but the event history needed state: no server id was made.
        assert not (tmp_path / "lo-state" / "server-id").exists()
        assert not (tmp_path / "off-state" / "server-id").exists()
        assert (tmp_path / "lo-state" / "events.jsonl").exists()


async def test_server_id_persists_and_goodbye(tmp_path: Path) -> None:
    lan = lan_ipv4()
    state = tmp_path / "state"
    async with NutBrowser() as browser:
        with _start(tmp_path, "a", "--listen", f"{lan}:{{port}}", "--listen", "127.0.0.1:{port}",
                    "--state-dir", str(state)) as first:
            info = await browser.find(lambda i: i.port == first.cfg.port)
            server_id = info.decoded_properties["id"]
            assert server_id == (state / "server-id").read_text().strip()
            assert info.parsed_addresses() == [lan]
            await _wait_log(first, f"zeroconf: advertising {info.name.removesuffix('._nut._tcp.local.')!r}")
        # SIGTERM: goodbye packets remove the service at once (its TTL is minutes).
        await browser.gone(info.name)

        # Same state directory, another start (and PUSH off): same id.
        with _start(tmp_path, "b", "--listen", f"{lan}:{{port}}", "--listen", "127.0.0.1:{port}",
                    "--state-dir", str(state), upsd_extra="PUSH false\n") as second:
            info = await browser.find(lambda i: i.port == second.cfg.port)
            assert info.decoded_properties["id"] == server_id
            assert info.decoded_properties["push"] == "0"
