"""APC Smart external battery packs: ``battery.packs``/``battery.packs.bad`` as NUT publishes them.

NUT's apcsmart reads ``>`` (external packs) and ``<`` (bad packs) once at start when the
command set lists them, and publishes the UPS's ``nnn`` text unconverted; a UPS answering
``NA`` gets neither variable. Here NUT's C apcsmart (under the C upsd) and our bridge each
talk to their own identical pty simulator: a SmartCell XL model with two packs, one bad,
and a model without packs that answers ``NA``. Both servers must give the same bytes for
the two variables (GET VAR, GET TYPE, LIST RW membership), and ours the exact values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nutbridge.drivers.apcsmart import protocol as apc
from nutbridge.simulation.apcsmart import ApcSmartSim
from nutbridge.simulation.model import Params, SimUPS
from tests.conftest import BridgeServer

from .support import realnut, serialsim
from .test_apcsmart import side_by_side

NAMES = ("battery.packs", "battery.packs.bad")


def test_table_rows() -> None:
    assert apc.convert(">", "002") == "002"  # NUT keeps the UPS's text
    assert apc.convert("<", "NA") is None
    assert apc.VAR_BY_NAME["battery.packs"].cmd == ">"
    assert apc.VAR_BY_NAME["battery.packs.bad"].cmd == "<"


def _answers(port: int) -> dict[str, bytes]:
    out = {}
    for name in NAMES:
        out[name] = realnut.query(port, f"GET VAR apc {name}", f"GET TYPE apc {name}")
    out["enum"] = realnut.query(port, "LIST ENUM apc battery.packs")
    rw = realnut.query(port, "LIST RW apc")
    out["rw"] = b"\n".join(ln for ln in rw.splitlines() if b"battery.packs" in ln)
    return out


@pytest.mark.parametrize(("packs", "choices"),
                         [((2, 1), None), (None, None), ((2, 0), ["001", "002", "004"])],
                         ids=["xl-two-packs-one-bad", "no-packs-NA", "packs-enumerated-in-caps"])
def test_packs_same_as_c_apcsmart(tmp_path: Path, bridge_server: Callable[..., BridgeServer],
                                  packs: tuple[int, int] | None, choices: list[str] | None) -> None:

    def sim(where: str) -> ApcSmartSim:
        return ApcSmartSim(tmp_path / where / "ttyUPS0", SimUPS(Params(seed=1)), speed=0,
                           packs=packs, packs_choices=choices)

    with side_by_side(tmp_path, bridge_server, sim) as (cport, bport, csim, bsim):
        want, got = _answers(cport), _answers(bport)
        sent = []
        if choices:  # a setting like the others: stepped with "-" to the value asked
            for port, dev in ((cport, csim), (bport, bsim)):
                dev.clear_received()
                answer = realnut.query(port, "USERNAME admin", "PASSWORD s3cr3t",
                                       "SET VAR apc battery.packs 004", timeout=10).decode()
                assert answer.count("OK") == 3, answer
                serialsim.wait_var(port, "apc", "battery.packs", "004", timeout=15)
                sent.append(b"".join(dev.received()))
    assert got == want
    if packs is None:
        assert want["battery.packs"].startswith(b"ERR VAR-NOT-SUPPORTED"), want
        assert want["rw"] == b""
        return
    assert want["battery.packs"].startswith(b'VAR apc battery.packs "002"\n'), want
    assert want["battery.packs.bad"].startswith(b'VAR apc battery.packs.bad "%03d"\n' % packs[1]), want
    if choices is None:
        assert want["rw"] == b"", want  # read-only where ^Z does not enumerate it
        return
    assert b"RW" in want["battery.packs"] and want["enum"].count(b"\nENUM apc battery.packs ") == 3, want
    assert b">-" in sent[0] and b">-" in sent[1], sent
    assert sent[0].count(b"-") == sent[1].count(b"-"), sent
