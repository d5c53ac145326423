"""hassfest/HACS-style validation of manifest.json and hacs.json (see integration_files.py)."""

from __future__ import annotations

import re
from typing import get_args, get_type_hints
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.loader import Manifest

from custom_components.nut_bridge.const import DOMAIN

from .integration_files import INTEGRATION, ROOT, load_json, script

# ---------------------------------------------------------------- manifest.json

# hassfest CUSTOM_INTEGRATION_MANIFEST_SCHEMA (script/hassfest/manifest.py, probatio era):
# no extra keys allowed. (categories/connectivity are not in it, nor in HA 2026.10.4's loader.)
HASSFEST_CUSTOM_KEYS = frozenset(
    {
        "domain",
        "name",
        "integration_type",
        "config_flow",
        "mqtt",
        "zeroconf",
        "ssdp",
        "bluetooth",
        "homekit",
        "dhcp",
        "usb",
        "documentation",
        "quality_scale",
        "requirements",
        "dependencies",
        "after_dependencies",
        "codeowners",
        "loggers",
        "disabled",
        "iot_class",
        "single_config_entry",
        "preview_features",
        "version",
        "issue_tracker",
        "import_executor",
    }
)
# HACS INTEGRATION_MANIFEST_JSON_SCHEMA requires these; hassfest requires iot_class and version.
REQUIRED_KEYS = frozenset(
    {"domain", "name", "version", "codeowners", "documentation", "issue_tracker", "iot_class"}
)
IOT_CLASSES = frozenset(
    {
        "assumed_state",
        "calculated",
        "cloud_polling",
        "cloud_push",
        "local_polling",
        "local_push",
    }
)
SUPPORTED_QUALITY_SCALES = frozenset(
    {
        "bronze",
        "silver",
        "gold",
        "platinum",
        "custom",
        "no_score",
        "internal",
        "legacy",
    }
)
VERSION_STRATEGIES = [
    AwesomeVersionStrategy.CALVER,
    AwesomeVersionStrategy.SEMVER,
    AwesomeVersionStrategy.SIMPLEVER,
    AwesomeVersionStrategy.BUILDVER,
    AwesomeVersionStrategy.PEP440,
]
ZEROCONF_KEYS = frozenset({"type", "macaddress", "manufacturer", "model", "name", "properties"})
PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][A-Za-z0-9.+!-]*")


def _https(url: object) -> bool:
    parsed = urlparse(str(url))
    return parsed.scheme == "https" and bool(parsed.netloc)


def test_manifest_keys() -> None:
    manifest = load_json(INTEGRATION / "manifest.json")
    keys = set(manifest)
    assert keys >= REQUIRED_KEYS, REQUIRED_KEYS - keys
    assert keys <= HASSFEST_CUSTOM_KEYS, keys - HASSFEST_CUSTOM_KEYS
    loader_keys = set(get_type_hints(Manifest))
    assert keys <= loader_keys, keys - loader_keys
    # hassfest: "Manifest keys are not sorted correctly: domain, name, then alphabetical order".
    order = list(manifest)
    assert order[:2] == ["domain", "name"] and order[2:] == sorted(order[2:]), order


def test_manifest_values() -> None:
    manifest = load_json(INTEGRATION / "manifest.json")
    assert manifest["domain"] == DOMAIN == INTEGRATION.name
    assert isinstance(manifest["name"], str) and manifest["name"]
    # The loader blocks a custom integration whose version AwesomeVersion cannot parse.
    assert isinstance(manifest["version"], str)
    AwesomeVersion(manifest["version"], ensure_strategy=VERSION_STRATEGIES)
    assert isinstance(manifest["codeowners"], list)
    assert all(isinstance(c, str) and c.startswith("@") for c in manifest["codeowners"])
    assert _https(manifest["documentation"])
    assert not manifest["documentation"].startswith("https://www.home-assistant.io/integrations")
    assert _https(manifest["issue_tracker"])
    assert manifest["iot_class"] in IOT_CLASSES
    integration_types = set(get_args(get_type_hints(Manifest)["integration_type"])) - {"virtual"}
    assert manifest.get("integration_type", "hub") in integration_types
    if manifest.get("config_flow"):
        assert manifest["config_flow"] is True and (INTEGRATION / "config_flow.py").is_file()
    for key in ("requirements", "dependencies", "after_dependencies", "loggers", "codeowners"):
        assert all(isinstance(v, str) for v in manifest.get(key, [])), key
    for requirement in manifest.get("requirements", []):
        assert PINNED.fullmatch(requirement), f"requirement {requirement!r} is not pinned as pkg==x.y"
        # nut-bridge is not on PyPI: the HACS zip vendors it (scripts/build_hacs.py).
        assert not re.match(r"nut[-_.]?bridge\b", requirement, re.IGNORECASE), requirement
    if "quality_scale" in manifest:
        assert manifest["quality_scale"] in SUPPORTED_QUALITY_SCALES
    for key in ("single_config_entry", "import_executor"):
        assert isinstance(manifest.get(key, False), bool), key


def test_manifest_zeroconf() -> None:
    manifest = load_json(INTEGRATION / "manifest.json")
    entries = manifest.get("zeroconf", [])
    assert isinstance(entries, list)
    for entry in entries:
        if isinstance(entry, str):
            service_type = entry
        else:
            assert isinstance(entry, dict) and "type" in entry, entry
            assert set(entry) <= ZEROCONF_KEYS, set(entry) - ZEROCONF_KEYS
            service_type = entry["type"]
            for key in ("manufacturer", "model", "name"):
                if key in entry:
                    assert isinstance(entry[key], str) and entry[key] == entry[key].lower(), (key, entry)
            if "macaddress" in entry:
                assert entry["macaddress"] == entry["macaddress"].upper() and "*" in entry["macaddress"]
            properties = entry.get("properties", {})
            assert isinstance(properties, dict)
            for key, value in properties.items():
                # Matched against lower-cased TXT values: an upper-case matcher never matches.
                assert isinstance(key, str) and isinstance(value, str) and value == value.lower(), (
                    key,
                    value,
                )
        assert re.fullmatch(r"_[a-z0-9-]+\._(tcp|udp)\.local\.", service_type), service_type


# ---------------------------------------------------------------- hacs.json

# HACS HACS_MANIFEST_JSON_SCHEMA (custom_components/hacs/utils/validate.py): PREVENT_EXTRA.
HACS_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "content_in_root": bool,
    "country": (str, list),
    "filename": str,
    "hacs": str,
    "hide_default_branch": bool,
    "homeassistant": str,
    "persistent_directory": str,
    "render_readme": bool,
    "zip_release": bool,
}


def test_hacs_json() -> None:
    hacs = load_json(ROOT / "hacs.json")
    assert hacs.get("name")
    assert set(hacs) <= set(HACS_KEYS), set(hacs) - set(HACS_KEYS)
    for key, value in hacs.items():
        assert isinstance(value, HACS_KEYS[key]), key
    # One integration per repository, under custom_components/.
    assert hacs.get("content_in_root") is not True
    assert [
        p.name
        for p in (ROOT / "custom_components").iterdir()
        if p.is_dir() and p.name != "__pycache__" and not p.name.startswith(".")
    ] == [INTEGRATION.name]
    if "homeassistant" in hacs:
        assert AwesomeVersion(hacs["homeassistant"]) <= AwesomeVersion(HA_VERSION), "tested on " + HA_VERSION
    if hacs.get("zip_release"):
        filename = hacs["filename"]
        assert filename.endswith(".zip")
        assert script("build_hacs").DEFAULT_OUT.name == filename
        assert f"dist/{filename}" in (ROOT / ".github" / "workflows" / "release.yml").read_text()
