"""The HACS release zip (scripts/build_hacs.py) works where nutbridge-ups is not installed.

The zip is built, extracted into a fresh Home Assistant config directory, and used from a
separate Python process in which importing ``nutbridge`` raises ImportError and this
repository is not on sys.path: the vendored client talks to a real bridge, and Home
Assistant's loader finds, sets up and unloads the extracted integration.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

from .conftest import Bridge

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "nut_bridge"
BUILD_SCRIPT = ROOT / "scripts" / "build_hacs.py"
VENDOR_PREFIX = "custom_components.nut_bridge._vendor.nutbridge"


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_nutbridge_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return _load_script(BUILD_SCRIPT)


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make hacs` builds, written to a temporary directory."""
    out = tmp_path_factory.mktemp("dist") / "nut_bridge.zip"
    proc = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vendored nutbridge" in proc.stdout
    return out


@pytest.fixture
def config_dir(release_zip: Path, tmp_path: Path) -> Path:
    """A Home Assistant config directory with the zip extracted as HACS does it."""
    config = tmp_path / "config"
    target = config / "custom_components" / "nut_bridge"
    target.mkdir(parents=True)
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(target)
    return config


# ---------------------------------------------------------------- the archive


def test_zip_layout(release_zip: Path) -> None:
    with zipfile.ZipFile(release_zip) as zf:
        names = {PurePosixPath(n) for n in zf.namelist()}
        manifest = json.loads(zf.read("manifest.json"))
        sources = {n: zf.read(str(n)).decode() for n in names if n.suffix == ".py"}
        assert zf.testzip() is None
    # HACS extracts the archive into custom_components/<domain>/: files at the root.
    assert manifest == json.loads((INTEGRATION / "manifest.json").read_text())
    for name in names:
        assert not name.is_absolute() and ".." not in name.parts, name
        assert "__pycache__" not in name.parts and name.suffix != ".pyc", name
    shipped = {
        PurePosixPath(p.relative_to(INTEGRATION).as_posix())
        for p in INTEGRATION.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert shipped <= names, shipped - names
    extra = {n for n in names - shipped if n.parts[0] != "_vendor"}
    assert not extra, extra
    for image in ("icon.png", "logo.png", "dark_icon@2x.png"):
        assert PurePosixPath("brand", image) in names
    # Only the client side of nutbridge: no server, drivers or tools.
    vendored = {n.relative_to("_vendor/nutbridge") for n in names if n.parts[:2] == ("_vendor", "nutbridge")}
    assert PurePosixPath("client/push.py") in vendored
    assert {v.parts[0] for v in vendored} <= {"__init__.py", "client", "protocol"}, vendored

    # No import of a top-level nutbridge is left, and every relative import resolves.
    for name, text in sources.items():
        tree = ast.parse(text, str(name))
        package = name.parent.parts  # of a module and of a package's __init__.py alike
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "nutbridge" for a in node.names), (name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert (node.module or "").split(".")[0] != "nutbridge", (name, node.lineno)
                    continue
                base = package[: len(package) - (node.level - 1)]
                target = PurePosixPath(*base, *(node.module.split(".") if node.module else []))
                candidates = [target / "__init__.py"]
                if node.module:
                    candidates.append(target.with_suffix(".py"))
                else:  # `from . import x`: x is a module or package
                    candidates += [target / f"{a.name}.py" for a in node.names]
                assert any(c in names for c in candidates), f"{name}:{node.lineno}: {target} not in the zip"


def test_zip_is_reproducible(release_zip: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(again)], check=True, capture_output=True, timeout=120
    )
    assert again.read_bytes() == release_zip.read_bytes()


# ---------------------------------------------------------------- the rewriting


def _rewrite(build: ModuleType, text: str, package: tuple[str, ...] = ()) -> str:
    src = build.Source(Path("x.py"), PurePosixPath("x.py"), package, text=text, tree=ast.parse(text))
    out: str = build.rewrite(src)
    assert build.leftovers("x.py", out) == []
    return out


def test_rewrite_forms(build: ModuleType) -> None:
    text = (
        '"""Doc."""\n'
        "from __future__ import annotations\n"
        "import os, nutbridge.client.push as push\n"
        "from nutbridge.client import (\n"
        "    NutError,  # a comment inside\n"
        "    ReconnectingClient as RC,\n"
        ")\n"
        "LABEL = 'Ünïcode'; from nutbridge.protocol.wire import request\n"
        "if TYPE_CHECKING:\n"
        "    from nutbridge import client\n"
        "from .const import DOMAIN\n"
    )
    assert _rewrite(build, text) == (
        '"""Doc."""\n'
        "from __future__ import annotations\n"
        "import os; from ._vendor.nutbridge.client import push as push\n"
        "from ._vendor.nutbridge.client import NutError, ReconnectingClient as RC\n"
        "LABEL = 'Ünïcode'; from ._vendor.nutbridge.protocol.wire import request\n"
        "if TYPE_CHECKING:\n"
        "    from ._vendor.nutbridge import client\n"
        "from .const import DOMAIN\n"
    )
    # Inside the copy (package _vendor.nutbridge.client), and from an integration sub-package.
    vendored = ("_vendor", "nutbridge", "client")
    assert _rewrite(build, "from nutbridge.protocol.wire import request\n", vendored) == (
        "from ..protocol.wire import request\n"
    )
    assert _rewrite(build, "from nutbridge.client.errors import NutError\n", vendored) == (
        "from .errors import NutError\n"
    )
    assert _rewrite(build, "import nutbridge as nb\n", ("sub",)) == "from .._vendor import nutbridge as nb\n"


def test_rewrite_refuses_what_it_cannot_rewrite(build: ModuleType) -> None:
    src = build.Source(
        Path("x.py"),
        PurePosixPath("x.py"),
        (),
        text="import nutbridge.client\n",
        tree=ast.parse("import nutbridge.client\n"),
    )
    with pytest.raises(build.BuildError, match="cannot be vendored"):
        build.rewrite(src)
    assert build.leftovers("x.py", "import importlib\nimportlib.import_module('nutbridge.client')\n")
    assert build.leftovers("x.py", "from nutbridge.client import NutError\n")


def test_vendored_code_may_only_import_stdlib(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "nutbridge"
    (lib / "client").mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "client" / "__init__.py").write_text("import asyncio\nfrom .core import X\n")
    (lib / "client" / "core.py").write_text("import definitely_not_a_dependency_of_ha\nX = 1\n")
    monkeypatch.setattr(build, "LIBRARY_ROOT", tmp_path)
    allowed = build._stdlib()
    with pytest.raises(build.BuildError, match="definitely_not_a_dependency_of_ha"):
        build.vendored_closure({("nutbridge", "client")}, allowed)
    (lib / "client" / "core.py").write_text("import json\nfrom ..protocol import wire\nX = 1\n")
    with pytest.raises(build.BuildError, match="no such module"):
        build.vendored_closure({("nutbridge", "client")}, allowed)
    (lib / "protocol").mkdir()
    (lib / "protocol" / "__init__.py").write_text("")
    (lib / "protocol" / "wire.py").write_text("")
    (lib / "protocol" / "unused.py").write_text("")
    found = build.vendored_closure({("nutbridge", "client")}, allowed)
    assert set(found) == {
        ("nutbridge",),
        ("nutbridge", "client"),
        ("nutbridge", "client", "core"),
        ("nutbridge", "protocol"),
        ("nutbridge", "protocol", "wire"),
    }


# ---------------------------------------------------------------- without nut-bridge

CHILD = r'''
import asyncio
import json
import sys
from importlib.abc import MetaPathFinder
from pathlib import Path


class BlockNutBridge(MetaPathFinder):
    """nut-bridge is not installed (here it is, editable: hide it)."""

    def find_spec(self, name, path=None, target=None):
        if name == "nutbridge" or name.startswith("nutbridge."):
            raise ImportError(f"No module named {name!r} (blocked)")
        return None


sys.meta_path.insert(0, BlockNutBridge())
config_dir, port, repo = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
sys.path.insert(0, str(config_dir))
out = {"sys_path_has_repo": any(Path(p or ".").resolve() == repo for p in sys.path)}
try:
    import nutbridge  # noqa: F401
except ImportError:
    out["nutbridge_blocked"] = True
else:
    out["nutbridge_blocked"] = False

import custom_components
import custom_components.nut_bridge as integration
from custom_components.nut_bridge._vendor.nutbridge.client import ReconnectingClient
from custom_components.nut_bridge.coordinator import async_open_client

out["custom_components_path"] = [str(p) for p in custom_components.__path__]
out["integration_file"] = integration.__file__
out["client_module"] = ReconnectingClient.__module__


async def talk():
    client, ups = await async_open_client("127.0.0.1", port, None, None)
    try:
        out["list_ups"] = ups
        out["dummy"] = await client.list_var("dummy")
        out["sim_status"] = (await client.list_var("sim")).get("ups.status")
    finally:
        await client.close()


async def home_assistant():
    from homeassistant import loader
    from homeassistant.config_entries import ConfigEntryState
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import MockConfigEntry, async_test_home_assistant

    async with async_test_home_assistant(config_dir=str(config_dir)) as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # the test harness hides custom_components
        found = await loader.async_get_integration(hass, "nut_bridge")
        out["loader"] = {
            "file_path": str(found.file_path),
            "version": str(found.version),
            "has_branding": found.has_branding,
            "requirements": found.requirements,
        }
        assert await async_setup_component(hass, "nut_bridge", {})
        out["services"] = sorted(hass.services.async_services_for_domain("nut_bridge"))
        entry = MockConfigEntry(
            domain="nut_bridge", title="bridge", unique_id=f"127.0.0.1:{port}",
            data={"host": "127.0.0.1", "port": port},
        )
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        out["entry_state"] = entry.state.value
        charge = hass.states.get("sensor.dummy_battery_charge")
        out["dummy_battery_charge"] = charge.state if charge else None
        online = hass.states.get("binary_sensor.sim_online")
        out["sim_online"] = online.state if online else None
        await hass.config_entries.async_unload(entry.entry_id)
        out["unloaded"] = entry.state is ConfigEntryState.NOT_LOADED
        await hass.async_stop(force=True)


asyncio.run(talk())
if sys.argv[4:] == ["--hass"]:
    asyncio.run(home_assistant())
out["nutbridge_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "nutbridge")
print("RESULT " + json.dumps(out))
'''


def _run_child(config_dir: Path, bridge: Bridge, *args: str) -> dict[str, object]:
    script = config_dir.parent / "child.py"
    script.write_text(CHILD)
    proc = subprocess.run(
        # -I: no script directory, no PYTHON* variables, no user site: the repo stays off sys.path.
        [sys.executable, "-I", str(script), str(config_dir), str(bridge.port), str(ROOT), *args],
        cwd=config_dir.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and results, proc.stdout[-3000:] + proc.stderr[-6000:]
    out: dict[str, object] = json.loads(results[-1].removeprefix("RESULT "))
    return out


def _check_isolated(out: dict[str, object], config_dir: Path) -> None:
    assert out["nutbridge_blocked"] is True
    assert out["sys_path_has_repo"] is False
    assert out["custom_components_path"] == [str(config_dir / "custom_components")]
    assert out["integration_file"] == str(config_dir / "custom_components" / "nut_bridge" / "__init__.py")
    assert str(out["client_module"]).startswith(VENDOR_PREFIX)
    assert out["nutbridge_modules"] == []


def test_zip_talks_to_a_bridge_without_nut_bridge(config_dir: Path, bridge: Bridge) -> None:
    out = _run_child(config_dir, bridge)
    _check_isolated(out, config_dir)
    assert set(out["list_ups"]) == {"sim", "dummy"}  # type: ignore[arg-type]
    dummy = out["dummy"]
    assert isinstance(dummy, dict)
    assert (dummy["ups.mfr"], dummy["ups.serial"], dummy["battery.charge"]) == (
        "Dummy Corp",
        "DUMMY-0001",
        "87",
    )
    assert str(out["sim_status"]).split()[0] == "OL"


def test_home_assistant_loads_the_zip(config_dir: Path, bridge: Bridge) -> None:
    out = _run_child(config_dir, bridge, "--hass")
    _check_isolated(out, config_dir)
    loader = out["loader"]
    assert isinstance(loader, dict)
    assert loader["file_path"] == str(config_dir / "custom_components" / "nut_bridge")
    assert loader["version"] == json.loads((INTEGRATION / "manifest.json").read_text())["version"]
    assert loader["has_branding"] is True
    assert loader["requirements"] == []
    assert set(out["services"]) >= {"run_command", "set_variable", "shutdown"}  # type: ignore[arg-type]
    assert out["entry_state"] == "loaded"
    assert out["dummy_battery_charge"] == "87.0"
    assert out["sim_online"] == "on"
    assert out["unloaded"] is True


def test_build_refuses_a_stale_vendor_dir(
    build: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "nut_bridge"
    (fake / "_vendor").mkdir(parents=True)
    monkeypatch.setattr(build, "INTEGRATION", fake)
    with pytest.raises(build.BuildError, match="exists in the source tree"):
        build.integration_sources()


def _iter_py(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_integration_imports_nutbridge_only_in_vendorable_forms() -> None:
    """`import nutbridge.x` (binding the global name) would make the build fail: catch it here first."""
    for path in _iter_py(INTEGRATION):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "nutbridge":
                        assert alias.asname, f"{path}:{node.lineno}: import {alias.name} without `as`"
