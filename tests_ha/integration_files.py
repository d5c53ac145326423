"""The integration's files as data, for the metadata tests (test_manifest, test_brand,
test_quality_scale, test_translations, test_services_yaml).

hassfest and the HACS action only run in GitHub CI (.github/workflows/validate.yml).
Those modules check the same rules offline -- as read from hassfest's
script/hassfest/{manifest,quality_scale}.py and HACS's utils/validate.py -- with the
installed Home Assistant (2026.10.4) as reference where it carries the data, plus what
only a running integration shows. Here: paths, JSON/YAML loaders, the integration's
modules imported, and an ast view of its sources (translation keys, quality-scale
evidence and config-flow steps are found by reading the code, so new platforms,
exceptions, steps and services are checked without touching the tests).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import homeassistant
import yaml
from homeassistant.const import Platform

import custom_components.nut_bridge

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "nut_bridge"
BRAND = INTEGRATION / "brand"
HA_COMPONENTS = Path(homeassistant.__file__).parent / "components"


def load_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def strings_json() -> dict[str, Any]:
    return load_json(INTEGRATION / "strings.json")


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def sources() -> dict[Path, ast.Module]:
    return {
        p: ast.parse(p.read_text(), str(p))
        for p in sorted(INTEGRATION.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def modules() -> list[ModuleType]:
    """Every module of the integration, imported."""
    package = custom_components.nut_bridge
    return [package] + [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def platform_modules() -> dict[str, Path]:
    platforms = {p.value for p in Platform}
    return {p.stem: p for p in INTEGRATION.glob("*.py") if p.stem in platforms}


def callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def calls(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, ast.Call]]:
    """Every call, with the innermost function it is in."""

    def walk(node: ast.AST, func: ast.FunctionDef | ast.AsyncFunctionDef | None) -> Iterator[Any]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Call):
                yield func, child
            yield from walk(child, inner)

    yield from walk(tree, None)


def function_defs(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def calls_named(tree: ast.AST, name: str) -> list[ast.Call]:
    return [call for _, call in calls(tree) if callee(call) == name]


def script(name: str) -> ModuleType:
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_nutbridge_script_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# manifest.json discovery matchers (each with its async_step_<key> in the config flow).
DISCOVERY_KEYS = ("bluetooth", "dhcp", "homekit", "mqtt", "ssdp", "usb", "zeroconf")
# brand/ holds these and a dark_ variant of each.
BRAND_IMAGES = ("icon.png", "icon@2x.png", "logo.png", "logo@2x.png")
