"""Static checks of manifest.json, hacs.json and the translations."""

from __future__ import annotations

import json
from pathlib import Path

from custom_components.nut_bridge.binary_sensor import BINARY_SENSORS
from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.sensor import SENSORS, STATUS_DESCRIPTION, status_option

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "nut_bridge"


def _load(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_manifest() -> None:
    manifest = _load(INTEGRATION / "manifest.json")
    assert manifest["domain"] == DOMAIN == "nut_bridge"
    assert manifest["name"] == "NUT Bridge"
    assert manifest["version"] == "0.1.0"
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "hub"
    assert manifest["iot_class"] == "local_push"
    assert manifest["requirements"] == []
    for key in ("documentation", "issue_tracker", "codeowners"):
        assert key in manifest


def test_hacs() -> None:
    hacs = _load(ROOT / "hacs.json")
    assert hacs["name"] == "NUT Bridge"
    assert set(hacs) <= {"name", "content_in_root", "render_readme", "homeassistant", "hacs", "zip_release",
                         "filename", "hide_default_branch", "country", "persistent_directory"}


def test_translations_match_strings() -> None:
    assert _load(INTEGRATION / "translations" / "en.json") == _load(INTEGRATION / "strings.json")


def test_every_translation_key_has_a_name() -> None:
    entity = _load(INTEGRATION / "strings.json")["entity"]
    assert isinstance(entity, dict)
    for d in (*SENSORS, STATUS_DESCRIPTION):
        assert d.translation_key in entity["sensor"]
    for b in BINARY_SENSORS:
        assert b.translation_key in entity["binary_sensor"]
    states = entity["sensor"]["ups_status"]["state"]
    assert set(states) == set(STATUS_DESCRIPTION.options or [])


def test_status_tolerates_unknown_tokens() -> None:
    assert status_option(frozenset({"OL", "CHRG", "WHATEVER"})) == "online"
    assert status_option(frozenset({"OB", "LB", "OQ"})) == "low_battery"
    assert status_option(frozenset({"OQ"})) is None
