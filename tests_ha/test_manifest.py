"""hassfest/HACS-style validation of the integration's metadata, translations and assets.

hassfest and the HACS action only run in GitHub CI (.github/workflows/validate.yml).
These tests check the same rules offline -- as read from hassfest's
script/hassfest/{manifest,quality_scale}.py and HACS's utils/validate.py -- with the
installed Home Assistant (2026.10.4) as reference where it carries the data, plus what
only a running integration shows: the services it registers, its config-flow forms and
its entities' and device triggers' translation keys against a real bridge.

Translation keys are discovered by reading the code (ast), so new platforms, exceptions,
steps and services are checked without touching this file.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import re
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_type_hints
from urllib.parse import urlparse

import homeassistant
import pytest
import yaml
from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, Platform
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import EntityDescription
from homeassistant.loader import Manifest
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_get_device_automations

import custom_components.nut_bridge
from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.sensor import status_option

from .conftest import Bridge, setup_entry

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "nut_bridge"
BRAND = INTEGRATION / "brand"
HA_COMPONENTS = Path(homeassistant.__file__).parent / "components"


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _strings() -> dict[str, Any]:
    return _load(INTEGRATION / "strings.json")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _sources() -> dict[Path, ast.Module]:
    return {
        p: ast.parse(p.read_text(), str(p))
        for p in sorted(INTEGRATION.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _modules() -> list[ModuleType]:
    """Every module of the integration, imported."""
    package = custom_components.nut_bridge
    return [package] + [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def _platform_modules() -> dict[str, Path]:
    platforms = {p.value for p in Platform}
    return {p.stem: p for p in INTEGRATION.glob("*.py") if p.stem in platforms}


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _calls(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, ast.Call]]:
    """Every call, with the innermost function it is in."""

    def walk(node: ast.AST, func: ast.FunctionDef | ast.AsyncFunctionDef | None) -> Iterator[Any]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Call):
                yield func, child
            yield from walk(child, inner)

    yield from walk(tree, None)


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


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
    manifest = _load(INTEGRATION / "manifest.json")
    keys = set(manifest)
    assert keys >= REQUIRED_KEYS, REQUIRED_KEYS - keys
    assert keys <= HASSFEST_CUSTOM_KEYS, keys - HASSFEST_CUSTOM_KEYS
    loader_keys = set(get_type_hints(Manifest))
    assert keys <= loader_keys, keys - loader_keys
    # hassfest: "Manifest keys are not sorted correctly: domain, name, then alphabetical order".
    order = list(manifest)
    assert order[:2] == ["domain", "name"] and order[2:] == sorted(order[2:]), order


def test_manifest_values() -> None:
    manifest = _load(INTEGRATION / "manifest.json")
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
    manifest = _load(INTEGRATION / "manifest.json")
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


def _script(name: str) -> ModuleType:
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_nutbridge_script_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_hacs_json() -> None:
    hacs = _load(ROOT / "hacs.json")
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
        assert _script("build_hacs").DEFAULT_OUT.name == filename
        assert f"dist/{filename}" in (ROOT / ".github" / "workflows" / "release.yml").read_text()


# ---------------------------------------------------------------- brand images

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
BRAND_IMAGES = ("icon.png", "icon@2x.png", "logo.png", "logo@2x.png")


@dataclass
class Png:
    width: int
    height: int
    depth: int
    color_type: int
    interlace: int
    chunks: list[bytes]
    data: bytes  # the concatenated IDAT payload


def _png(path: Path) -> Png:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks, idat, ihdr = 8, [], b"", b""
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append(kind)
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", (path, chunks)
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    return Png(width, height, depth, color_type, interlace, chunks, idat)


def _alpha(png: Png) -> list[bytearray]:
    """The alpha plane of an 8-bit RGBA PNG (interlaced or not)."""
    assert (png.depth, png.color_type) == (8, 6)
    raw = zlib.decompress(png.data)
    alpha = [bytearray(png.width) for _ in range(png.height)]
    off = 0
    for x0, y0, dx, dy in ADAM7 if png.interlace else ((0, 0, 1, 1),):
        xs = range(x0, png.width, dx)
        if not xs:
            continue
        stride = len(xs) * 4
        prev = bytearray(stride)
        for y in range(y0, png.height, dy):
            kind, line = raw[off], bytearray(raw[off + 1 : off + 1 + stride])
            off += 1 + stride
            for i in range(stride):
                a = line[i - 4] if i >= 4 else 0
                b = prev[i]
                c = prev[i - 4] if i >= 4 else 0
                if kind == 1:
                    p = a
                elif kind == 2:
                    p = b
                elif kind == 3:
                    p = (a + b) >> 1
                elif kind == 4:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else c
                else:
                    p = 0
                line[i] = (line[i] + p) & 0xFF
            for i, x in enumerate(xs):
                alpha[y][x] = line[i * 4 + 3]
            prev = line
    assert off == len(raw)
    return alpha


def test_brand_images() -> None:
    """home-assistant/brands: PNG, sRGB, icon 256x256 (@2x 512), logo shortest side 128-256 (@2x 256-512)."""
    for name in BRAND_IMAGES:
        light = _png(BRAND / name)
        dark = _png(BRAND / f"dark_{name}")
        for png in (light, dark):
            assert (png.depth, png.color_type) == (8, 6), name  # 8-bit RGBA: a transparent background
            assert b"sRGB" in png.chunks or b"iCCP" not in png.chunks, name
        assert (dark.width, dark.height) == (light.width, light.height), name
        hidpi = "@2x" in name
        if name.startswith("icon"):
            assert (light.width, light.height) == ((512, 512) if hidpi else (256, 256)), name
        else:
            low, high = (256, 512) if hidpi else (128, 256)
            assert low <= min(light.width, light.height) <= high, name
            assert light.width >= light.height, f"{name}: a landscape logo is preferred"
        if hidpi:
            base = _png(BRAND / name.replace("@2x", ""))
            assert abs(light.width - 2 * base.width) <= 2 and light.height == 2 * base.height, name


@pytest.mark.parametrize("name", ["icon.png", "dark_icon.png", "logo.png", "dark_logo.png"])
def test_brand_images_are_trimmed_and_transparent(name: str) -> None:
    alpha = _alpha(_png(BRAND / name))
    rows = [y for y, row in enumerate(alpha) if any(row)]
    cols = [x for x in range(len(alpha[0])) if any(row[x] for row in alpha)]
    # Trimmed: the drawing reaches every edge.
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (0, len(alpha) - 1, 0, len(alpha[0]) - 1)
    assert alpha[0][0] == alpha[0][-1] == alpha[-1][0] == alpha[-1][-1] == 0


@pytest.mark.parametrize("name", ["icon.png", "logo.png", "dark_icon.png", "dark_logo.png"])
def test_brand_images_come_from_make_brand(name: str) -> None:
    """The committed images are what scripts/make_brand.py draws (the @2x ones take longer; same code)."""
    assert _script("make_brand").IMAGES[name]() == (BRAND / name).read_bytes()


# ---------------------------------------------------------------- quality_scale.yaml

# script/hassfest/quality_scale.py ALL_RULES (../shared/docs/home-assistant.md section 4).
QUALITY_RULES: dict[str, tuple[str, ...]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}
ALL_RULES = frozenset(r for rules in QUALITY_RULES.values() for r in rules)


def _quality_scale() -> dict[str, tuple[str, str | None]]:
    """rule -> (status, comment), validated against hassfest's schema."""
    data = _yaml(INTEGRATION / "quality_scale.yaml")
    assert set(data) == {"rules"}
    result: dict[str, tuple[str, str | None]] = {}
    for rule, value in data["rules"].items():
        if isinstance(value, str):
            assert value in ("done", "todo"), (rule, value)  # exempt needs a comment
            result[rule] = (value, None)
        else:
            assert isinstance(value, dict) and set(value) == {"status", "comment"}, (rule, value)
            assert value["status"] in ("done", "todo", "exempt") and isinstance(value["comment"], str)
            result[rule] = (value["status"], value["comment"])
    return result


def test_quality_scale_lists_every_rule() -> None:
    assert len(ALL_RULES) == 54
    # Every core integration of the installed HA lists the rules hassfest knows: the same set.
    installed = {frozenset(_yaml(p)["rules"]) for p in HA_COMPONENTS.glob("*/quality_scale.yaml")}
    assert installed == {ALL_RULES}
    rules = _quality_scale()
    assert set(rules) == ALL_RULES, (ALL_RULES - set(rules), set(rules) - ALL_RULES)
    for rule, (status, comment) in rules.items():
        if status != "done":
            assert comment and comment.strip(), f"{rule}: {status} needs a comment saying why"


def _defines(tree: ast.AST, name: str) -> bool:
    return name in _functions(tree)


def _calls_named(tree: ast.AST, name: str) -> list[ast.Call]:
    return [call for _, call in _calls(tree) if _callee(call) == name]


def _assign_targets(nodes: Iterable[ast.AST]) -> Iterator[ast.expr]:
    """What the assignments (plain or annotated) among ``nodes`` assign to."""
    for n in nodes:
        if isinstance(n, ast.Assign):
            yield from n.targets
        elif isinstance(n, ast.AnnAssign):
            yield n.target


def _assigns_attr(tree: ast.AST, attr: str) -> bool:
    return any(isinstance(t, ast.Attribute) and t.attr == attr for t in _assign_targets(ast.walk(tree)))


def _module_level(tree: ast.Module, name: str) -> bool:
    return any(isinstance(t, ast.Name) and t.id == name for t in _assign_targets(tree.body))


def _assigns_name(tree: ast.AST, name: str) -> bool:
    return any(isinstance(t, ast.Name) and t.id == name for t in _assign_targets(ast.walk(tree)))


DISCOVERY_KEYS = ("bluetooth", "dhcp", "homekit", "mqtt", "ssdp", "usb", "zeroconf")


def _evidence() -> dict[str, str | None]:
    """For rules the code can show: None when it does, else what is missing."""
    src = {p.stem: t for p, t in _sources().items() if p.parent == INTEGRATION}
    init, flow = src["__init__"], src.get("config_flow", ast.Module(body=[], type_ignores=[]))
    manifest = _load(INTEGRATION / "manifest.json")
    discovery = [k for k in DISCOVERY_KEYS if k in manifest and _defines(flow, f"async_step_{k}")]
    setup_entry = _functions(init).get("async_setup_entry")

    def check(ok: bool, why: str) -> str | None:
        return None if ok else why

    return {
        "action-setup": check(_defines(init, "async_setup"), "no async_setup registering the services"),
        "brands": check(all((BRAND / n).is_file() for n in BRAND_IMAGES), "brand/ images missing"),
        "config-entry-unloading": check(_defines(init, "async_unload_entry"), "no async_unload_entry"),
        "config-flow": check(
            manifest.get("config_flow") is True and bool(src.get("config_flow")),
            "manifest config_flow / config_flow.py",
        ),
        "diagnostics": check(
            "diagnostics" in src and _defines(src["diagnostics"], "async_get_config_entry_diagnostics"),
            "no async_get_config_entry_diagnostics",
        ),
        "discovery": check(
            bool(discovery), f"no manifest matcher with its config-flow step ({DISCOVERY_KEYS})"
        ),
        "discovery-update-info": check(
            any(
                any(k.arg == "updates" for k in c.keywords)
                for c in _calls_named(flow, "_abort_if_unique_id_configured")
            ),
            "no _abort_if_unique_id_configured(updates=...)",
        ),
        "entity-unique-id": check(
            "entity" in src and _assigns_attr(src["entity"], "_attr_unique_id"),
            "the base entity sets no _attr_unique_id",
        ),
        "has-entity-name": check(
            "entity" in src and _assigns_name(src["entity"], "_attr_has_entity_name"),
            "the base entity does not set _attr_has_entity_name",
        ),
        "icon-translations": check((INTEGRATION / "icons.json").is_file(), "no icons.json"),
        "parallel-updates": check(
            all(_module_level(src[p], "PARALLEL_UPDATES") for p in _platform_modules()),
            "a platform module without PARALLEL_UPDATES",
        ),
        "reauthentication-flow": check(_defines(flow, "async_step_reauth"), "no async_step_reauth"),
        "reconfiguration-flow": check(_defines(flow, "async_step_reconfigure"), "no async_step_reconfigure"),
        "repair-issues": check(
            any(_calls_named(t, "async_create_issue") for t in src.values()), "no async_create_issue"
        ),
        "runtime-data": check(_assigns_attr(init, "runtime_data"), "entry.runtime_data is never set"),
        "stale-devices": check(
            _defines(init, "async_remove_config_entry_device")
            or any(_calls_named(t, "async_update_device") for t in src.values()),
            "no device removal",
        ),
        "test-before-setup": check(
            setup_entry is not None
            and (
                bool(_calls_named(setup_entry, "async_config_entry_first_refresh"))
                or any(isinstance(n, ast.Raise) for n in ast.walk(setup_entry))
            ),
            "async_setup_entry neither refreshes first nor raises",
        ),
        "unique-config-entry": check(
            bool(
                _calls_named(flow, "_abort_if_unique_id_configured")
                or _calls_named(flow, "_async_abort_entries_match")
            ),
            "the config flow never aborts on an existing entry",
        ),
    }


def test_quality_scale_done_rules_have_evidence() -> None:
    rules = _quality_scale()
    assert set(_evidence()) <= ALL_RULES
    missing = {rule: why for rule, why in _evidence().items() if rules[rule][0] == "done" and why is not None}
    assert not missing, f"marked done, but: {missing}"


# ---------------------------------------------------------------- strings.json

EXCEPTION_CLASSES = frozenset(
    {
        "HomeAssistantError",
        "ServiceValidationError",
        "ConfigEntryAuthFailed",
        "ConfigEntryNotReady",
        "ConfigEntryError",
        "UpdateFailed",
    }
)


@dataclass(frozen=True)
class _Sink:
    """A callable that carries a translation key: in keyword ``param`` (or at ``position``)."""

    param: str
    position: int | None
    tag: str  # "exceptions" or an entity platform


def _description_classes() -> dict[str, str]:
    """Names of the entity-description classes the integration uses -> their platform."""
    found: dict[str, str] = {}
    for module in _modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, EntityDescription):
                platform = _platform_of(value)
                if platform:
                    found[value.__name__] = platform
    return found


def _platform_of(cls: type) -> str | None:
    for base in cls.__mro__:
        parts = base.__module__.split(".")
        if parts[:2] == ["homeassistant", "components"] and len(parts) > 2:
            return parts[2]
    return None


def _translation_keys(seeds: dict[str, _Sink]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(tag, key, where) of every literal translation key reaching a seed, and the problems.

    A function that passes one of its parameters on as the key (``def _error(key): return
    HomeAssistantError(translation_key=key)``) becomes a sink itself, so keys passed to such
    helpers are found too.
    """
    trees = _sources()
    sinks = dict(seeds)

    def arg_of(call: ast.Call, sink: _Sink) -> ast.expr | None:
        for kw in call.keywords:
            if kw.arg == sink.param:
                return kw.value
        if sink.position is not None and len(call.args) > sink.position:
            return call.args[sink.position]
        return None

    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for func, call in _calls(tree):
                sink = sinks.get(_callee(call) or "")
                arg = arg_of(call, sink) if sink else None
                if sink is None or func is None or not isinstance(arg, ast.Name):
                    continue
                positional = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
                if arg.id not in positional + [a.arg for a in func.args.kwonlyargs]:
                    continue
                offset = 1 if positional[:1] in (["self"], ["cls"]) else 0
                new = _Sink(
                    arg.id, positional.index(arg.id) - offset if arg.id in positional else None, sink.tag
                )
                if sinks.get(func.name) != new:
                    sinks[func.name] = new
                    changed = True

    found: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for path, tree in trees.items():
        for func, call in _calls(tree):
            name = _callee(call) or ""
            sink = sinks.get(name)
            if sink is None:
                continue
            arg = arg_of(call, sink)
            where = f"{path.relative_to(INTEGRATION)}:{call.lineno}"
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((sink.tag, arg.value, where))
            elif (
                isinstance(arg, ast.Name)
                and func is not None
                and func.name in sinks
                and sinks[func.name].param == arg.id
            ):
                pass  # a helper forwarding its own parameter: its callers are checked
            elif sink.tag == "exceptions":
                problems.append(f"{where}: {name}(...) without a literal translation_key")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Name)
                and node.exc.id in EXCEPTION_CLASSES
            ):
                problems.append(f"{path.relative_to(INTEGRATION)}:{node.lineno}: bare raise {node.exc.id}")
    return found, problems


def test_translations_match_strings() -> None:
    assert _load(INTEGRATION / "translations" / "en.json") == _strings()


def test_entity_description_translation_keys() -> None:
    entity = _strings()["entity"]
    seeds = {
        name: _Sink("translation_key", None, platform) for name, platform in _description_classes().items()
    }
    found, _ = _translation_keys(seeds)
    assert found
    missing = [
        f"{where}: entity.{tag}.{key}"
        for tag, key, where in found
        if "name" not in entity.get(tag, {}).get(key, {})
    ]
    assert not missing, missing
    # Descriptions held in module variables (also those built with non-literal keys).
    for module in _modules():
        for description in _module_descriptions(module):
            platform = _platform_of(type(description))
            key = description.translation_key
            if key is None or platform is None:
                continue
            assert "name" in entity.get(platform, {}).get(key, {}), (
                f"{module.__name__}: entity.{platform}.{key}"
            )
            states = entity[platform][key].get("state", {})
            if getattr(description, "device_class", None) == "enum" and getattr(description, "options", None):
                assert set(description.options) <= set(states), (key, set(description.options) - set(states))
            if event_types := getattr(description, "event_types", None):
                event_states = (
                    entity[platform][key].get("state_attributes", {}).get("event_type", {}).get("state", {})
                )
                assert set(event_types) <= set(event_states), (
                    f"entity.{platform}.{key}.state_attributes.event_type.state",
                    set(event_types) - set(event_states),
                )


def _module_descriptions(module: ModuleType) -> Iterator[EntityDescription]:
    def walk(value: object, depth: int = 0) -> Iterator[EntityDescription]:
        if isinstance(value, EntityDescription):
            yield value
        elif depth < 3 and isinstance(value, list | tuple | frozenset | set):
            for item in value:
                yield from walk(item, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                yield from walk(item, depth + 1)

    for name, value in vars(module).items():
        if not name.startswith("__"):
            yield from walk(value)


def test_exception_translation_keys() -> None:
    exceptions = _strings().get("exceptions", {})
    found, problems = _translation_keys(
        {c: _Sink("translation_key", None, "exceptions") for c in EXCEPTION_CLASSES}
    )
    assert found
    missing = [
        f"{where}: exceptions.{key}"
        for tag, key, where in found
        if tag == "exceptions" and "message" not in exceptions.get(key, {})
    ]
    assert not missing, missing
    assert not problems, problems
    for path, tree in _sources().items():
        for _, call in _calls(tree):
            if _callee(call) in EXCEPTION_CLASSES and any(k.arg == "translation_key" for k in call.keywords):
                domain = next((k.value for k in call.keywords if k.arg == "translation_domain"), None)
                ok = (isinstance(domain, ast.Name) and domain.id == "DOMAIN") or (
                    isinstance(domain, ast.Constant) and domain.value == DOMAIN
                )
                assert ok, f"{path.name}:{call.lineno}: translation_domain must be DOMAIN"


def test_config_flow_strings() -> None:
    config = _strings()["config"]
    flow = _sources()[INTEGRATION / "config_flow.py"]
    functions = _functions(flow)
    missing: list[str] = []

    def need(section: str, key: str, where: int) -> None:
        if key not in config.get(section, {}):
            missing.append(f"config_flow.py:{where}: config.{section}.{key}")

    for _, call in _calls(flow):
        name = _callee(call)
        kwargs = {k.arg: k.value for k in call.keywords}
        value = (
            kwargs.get("step_id") if name in ("async_show_form", "async_show_menu") else kwargs.get("reason")
        )
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            need(
                "step" if name in ("async_show_form", "async_show_menu") else "abort",
                value.value,
                call.lineno,
            )
        if name in ("_abort_if_unique_id_configured", "_async_abort_entries_match"):
            need("abort", "already_configured", call.lineno)
        if name == "_abort_if_unique_id_mismatch" and "reason" not in kwargs:
            need("abort", "unique_id_mismatch", call.lineno)
        if name == "async_update_reload_and_abort" and "reason" not in kwargs:
            for source in ("reauth", "reconfigure"):
                if f"async_step_{source}" in functions:
                    need("abort", f"{source}_successful", call.lineno)
    for node in ast.walk(flow):
        # {"base": "cannot_connect"} and errors[...] = "invalid_auth"
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "base" and isinstance(value, ast.Constant):
                    need("error", str(value.value), node.lineno)
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "errors"
                ):
                    need("error", node.value.value, node.lineno)
    # A discovery flow that sets a unique id aborts with already_in_progress when one runs.
    if any(f"async_step_{k}" in functions for k in DISCOVERY_KEYS) and _calls_named(
        flow, "async_set_unique_id"
    ):
        need("abort", "already_in_progress", 0)
    assert not missing, missing


def _services_yaml() -> dict[str, Any]:
    path = INTEGRATION / "services.yaml"
    return _yaml(path) if path.is_file() else {}


def _service_fields(spec: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Fields of a service, sections flattened."""
    fields: dict[str, dict[str, Any]] = {}
    for name, field in ((spec or {}).get("fields") or {}).items():
        if isinstance(field, dict) and "fields" in field:  # a collapsible section
            fields.update({k: v or {} for k, v in field["fields"].items()})
        else:
            fields[name] = field or {}
    return fields


def test_services_strings_and_icons() -> None:
    strings = _strings()
    services = _services_yaml()
    icons = _load(INTEGRATION / "icons.json").get("services", {})
    for service, spec in services.items():
        text = strings.get("services", {}).get(service, {})
        assert text.get("name") and text.get("description"), f"services.{service}: name/description"
        for field, field_spec in _service_fields(spec).items():
            field_text = text.get("fields", {}).get(field, {})
            assert field_text.get("name") and field_text.get("description"), (
                f"services.{service}.fields.{field}"
            )
            for selector in (field_spec.get("selector") or {}).values():
                if isinstance(selector, dict) and "translation_key" in selector:
                    options = strings["selector"][selector["translation_key"]]["options"]
                    plain = [o for o in selector.get("options", []) if isinstance(o, str)]
                    assert set(plain) <= set(options), (service, field, set(plain) - set(options))
        for section, section_spec in ((spec or {}).get("fields") or {}).items():
            if isinstance(section_spec, dict) and "fields" in section_spec:
                assert text.get("sections", {}).get(section, {}).get("name"), (
                    f"services.{service}.sections.{section}"
                )
        assert str(icons.get(service, {}).get("service", "")).startswith("mdi:"), (
            f"icons.json services.{service}"
        )
    assert set(icons) <= set(services), set(icons) - set(services)
    assert set(strings.get("services", {})) <= set(services), set(strings.get("services", {})) - set(services)


def test_icons_json() -> None:
    icons = _load(INTEGRATION / "icons.json")
    entity = _strings().get("entity", {})

    def values(node: object) -> Iterator[object]:
        if isinstance(node, dict):
            for v in node.values():
                yield from values(v)
        else:
            yield node

    assert all(isinstance(v, str) and v.startswith("mdi:") for v in values(icons))
    for platform, keys in icons.get("entity", {}).items():
        for key, spec in keys.items():
            assert key in entity.get(platform, {}), (
                f"icons.json entity.{platform}.{key}: no such translation_key"
            )
            assert "default" in spec, f"icons.json entity.{platform}.{key}: no default icon"


def test_status_tolerates_unknown_tokens() -> None:
    assert status_option(frozenset({"OL", "CHRG", "WHATEVER"})) == "online"
    assert status_option(frozenset({"OB", "LB", "OQ"})) == "low_battery"
    assert status_option(frozenset({"OQ"})) is None


# ---------------------------------------------------------------- with Home Assistant running


def _schema_keys(schema: Any) -> set[str]:
    if schema is None:
        return set()
    inner = getattr(schema, "schema", None)
    if isinstance(inner, dict):
        return {str(getattr(k, "schema", k)) for k in inner}
    keys: set[str] = set()
    for validator in getattr(schema, "validators", ()):
        keys |= _schema_keys(validator)
    return keys


async def test_services_yaml_matches_registered_services(hass: HomeAssistant) -> None:
    """Registered in async_setup (action-setup): present with no config entry at all."""
    assert await async_setup_component(hass, DOMAIN, {})
    registered = hass.services.async_services_for_domain(DOMAIN)
    services = _services_yaml()
    assert set(registered) == set(services)
    for name, service in registered.items():
        assert set(_service_fields(services[name])) == _schema_keys(service.schema), name


async def test_config_flow_forms_describe_every_field(hass: HomeAssistant) -> None:
    steps = _strings()["config"]["step"]
    forms = [await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="127.0.0.1:3493",
        unique_id="127.0.0.1:3493",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: 3493, CONF_USERNAME: "admin", CONF_PASSWORD: "x"},
    )
    entry.add_to_hass(hass)
    forms.append(await entry.start_reauth_flow(hass))
    forms.append(await entry.start_reconfigure_flow(hass))
    for form in forms:
        assert form["type"] is FlowResultType.FORM, form
        step = steps[form["step_id"]]
        for key in form["data_schema"].schema:
            field = str(getattr(key, "schema", key))
            assert field in step.get("data", {}), f"config.step.{form['step_id']}.data.{field}"
            assert field in step.get("data_description", {}), (
                f"config.step.{form['step_id']}.data_description.{field}"
            )


async def test_entities_and_device_automations_are_translated(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    strings = _strings()
    entity_strings = strings["entity"]
    entries = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert len(entries) > 20
    problems = []
    for registry_entry in entries:
        if not registry_entry.has_entity_name:
            problems.append(f"{registry_entry.entity_id}: has_entity_name is not set")
        key = registry_entry.translation_key
        if key is None:
            continue
        text = entity_strings.get(registry_entry.domain, {}).get(key, {})
        if "name" not in text:
            problems.append(f"{registry_entry.entity_id}: entity.{registry_entry.domain}.{key}.name")
        state = hass.states.get(registry_entry.entity_id)
        options = state.attributes.get("options") if state else None
        if registry_entry.domain == "sensor" and options:
            problems += [
                f"{registry_entry.entity_id}: entity.sensor.{key}.state.{o}"
                for o in options
                if o not in text.get("state", {})
            ]
    automation_strings = strings.get("device_automation", {})
    kinds = {
        DeviceAutomationType.TRIGGER: "trigger_type",
        DeviceAutomationType.ACTION: "action_type",
        DeviceAutomationType.CONDITION: "condition_type",
    }
    for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id):
        for kind, section in kinds.items():
            for automation in await async_get_device_automations(hass, kind, device.id):
                if automation["domain"] == DOMAIN and automation["type"] not in automation_strings.get(
                    section, {}
                ):
                    problems.append(f"{device.name}: device_automation.{section}.{automation['type']}")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not problems, problems


def test_strings_sections_are_known() -> None:
    """Top-level sections hassfest's translations schema knows for an integration's strings.json."""
    known = {
        "title",
        "config",
        "options",
        "config_subentries",
        "selector",
        "entity",
        "exceptions",
        "services",
        "device_automation",
        "issues",
        "system_health",
        "conversation",
        "triggers",
        "conditions",
        "entity_component",
        "preview_features",
    }
    assert set(_strings()) <= known, set(_strings()) - known
