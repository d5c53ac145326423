"""Fixtures: a real NUT Bridge server process with a simulated and a dummy-ups UPS.

pytest-homeassistant-custom-component ships its own ``custom_components`` package;
ours must be imported first so that it is the one Home Assistant's loader finds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO / "bridge"), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import pytest  # noqa: E402

import custom_components.nut_bridge  # noqa: E402  (must win over the plugin's package)
from tests.support.realnut import BridgeProcess, NutConfig  # noqa: E402

assert Path(custom_components.nut_bridge.__file__).parent == REPO / "custom_components" / "nut_bridge"

DUMMY_DEV = """\
ups.status: OL
ups.mfr: Dummy Corp
ups.model: File UPS
ups.serial: DUMMY-0001
battery.charge: 87
ups.load: 12
"""


@dataclass
class Bridge:
    cfg: NutConfig
    proc: BridgeProcess
    dummy_file: Path

    @property
    def port(self) -> int:
        return self.cfg.port


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Every test may load custom_components.nut_bridge."""


@pytest.fixture
def bridge(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """A running ``nutbridge serve``: UPS ``sim`` (nutbridge-sim) and ``dummy`` (dummy-ups)."""
    cfg = NutConfig(tmp_path)
    dummy_file = tmp_path / "dummy.dev"
    dummy_file.write_text(DUMMY_DEV)
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto", serial="SIM-42")
    cfg.add_ups("dummy", driver="dummy-ups", port=str(dummy_file), pollinterval="1")
    proc = BridgeProcess.start(cfg)
    try:
        yield Bridge(cfg, proc, dummy_file)
    finally:
        proc.stop()
