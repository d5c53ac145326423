"""The shared bridge_server fixture itself (tests/conftest.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.realnut import NutConfig, query


def test_default_server_answers_and_stops_cleanly(bridge_server: Callable[..., Any]) -> None:
    srv = bridge_server()
    assert query(srv.port, "LIST UPS").startswith(b"BEGIN LIST UPS\n")
    assert b'VAR test ups.status "OL"' in query(srv.port, "GET VAR test ups.status")
    assert srv.stop(signal.SIGTERM) == 0


def test_own_config(bridge_server: Callable[..., Any], tmp_path: Path) -> None:
    dev = tmp_path / "a.dev"
    dev.write_text("ups.status: OB LB\n")
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups1", driver="dummy-ups", port=str(dev))
    srv = bridge_server(cfg)
    assert srv.port == cfg.port
    assert b'"OB LB"' in query(srv.port, "GET VAR ups1 ups.status")
