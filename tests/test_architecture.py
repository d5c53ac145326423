"""The dependency rules of docs/architecture.md, checked on the source (stdlib ``ast``, nothing runs).

The import graph covers ``bridge/nutbridge`` and ``custom_components/nut_bridge``. An edge is any
import of one of our modules found anywhere in a file:

* module-level, function-level and class-level ``import`` / ``from ... import`` statements,
  relative ones resolved; ``from pkg import name`` is an edge to ``pkg.name`` when that is a
  module, else to ``pkg``. Importing ``a.b.c`` is an edge to ``a.b.c`` only: the implicit
  import of the parent packages is how Python works, not a design dependency.
* ``if TYPE_CHECKING:`` imports are **included**. A module that needs another one to be
  type-checked or read depends on it as much as one that needs it to run, and a
  TYPE_CHECKING import is one refactoring away from a runtime import: a circle hidden behind
  it is still a circle (two of the circles this test was written against were of that kind).
* ``importlib.import_module(...)`` / ``__import__(...)`` with a string literal is an edge to
  that module; with an f-string, its literal prefix (``{__package__}`` and ``{__name__}``
  resolved) is taken: an edge to the module it names if it is complete, else to every module
  whose name starts with it (any of them may be loaded). Names computed at run time are not
  seen: the driver registry (``drivers/__init__.py``, ``"module:Class"`` strings loaded on
  demand so optional dependencies stay optional) is the driver API, not an import.

The rules:

1. no import circles anywhere;
2. ``nutbridge.protocol`` imports nothing of ours outside ``nutbridge.protocol``;
3. ``nutbridge.drivers`` never imports ``nutbridge.server``, ``nutbridge.tools`` or
   ``nutbridge.monitor``;
4. ``nutbridge.server`` and ``nutbridge.monitor`` know drivers only through the driver API
   (``nutbridge.drivers``, the package, and ``nutbridge.drivers.base``), never a driver family
   module; ``nutbridge.server`` does not import ``nutbridge.monitor`` (the composition root,
   ``nutbridge.serve``, puts server, drivers and monitor together);
5. the Home Assistant integration imports only the client library: ``nutbridge.client`` and its
   submodules (``nutbridge.client.push`` ...). What the client itself uses (``nutbridge.protocol``)
   is the client's business, not a second public surface;
6. the composition root ``nutbridge.serve`` is imported by no part of the bridge, only by the
   command lines of ``nutbridge serve`` (``nutbridge.server.main``) and ``nutbridge upsd``
   (``nutbridge.upsd_main``, the same process without drivers of its own);
7. ``nutbridge.simulation`` is on the ground floor: drivers, tests and benchmarks use it, and it
   imports nothing of ours but ``nutbridge.protocol``;
9. the other front ends on the device state, ``nutbridge.web`` (status page, /metrics, /api) and
   ``nutbridge.mqtt``, are servers too: they read the state and act through the server's Core
   (``nutbridge.server.frontend``), never importing drivers, the monitor, the tools or the
   composition root; drivers and the server's upsd side never import them (serve wires them);
8. every driver family is a package ``nutbridge.drivers.<family>`` whose ``driver`` module holds
   the class the ``driver =`` registry names; its sans-IO modules (``protocol``, ``table``,
   ``mapper``, ``status`` and the other parsers listed in :data:`SANS_IO`) import no I/O module
   (asyncio, sockets, threads, serial, USB, SNMP engines) and not the device state store; the
   table modules a family's registry loads (``subdrivers``, ``mibs``) import the table
   vocabulary, never the mapper or the driver.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: top-level package name -> its directory (relative to the repository)
ROOTS = {
    "nutbridge": Path("bridge/nutbridge"),
    "custom_components.nut_bridge": Path("custom_components/nut_bridge"),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    how: str  # "import", "type-checking import", "importlib"

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) -> {self.target}" + (
            f" [{self.how}]" if self.how != "import" else "")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """What ``__package__`` is inside the module."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def find_modules(repo: Path, roots: dict[str, Path] = ROOTS) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for prefix, rel in roots.items():
        base = repo / rel
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([prefix, *parts])
            modules[name] = Module(name, path, is_package)
    return modules


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:`` bodies."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name == "TYPE_CHECKING":
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _resolve_relative(mod: Module, level: int, name: str | None) -> str:
    base = mod.package
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{name}" if name else base


def _dynamic_prefix(mod: Module, arg: ast.expr) -> tuple[str, bool] | None:
    """(name or prefix, complete?) of an import_module argument, None when nothing literal."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value, True
    if not isinstance(arg, ast.JoinedStr):
        return None
    text = ""
    for part in arg.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            text += part.value
        elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) \
                and part.value.id in ("__package__", "__name__"):
            text += mod.package if part.value.id == "__package__" else mod.name
        else:
            return (text, False) if text else None
    return text, True


def _is_import_call(node: ast.Call) -> bool:
    f = node.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
    return name in ("import_module", "__import__")


def parse(path: Path) -> ast.Module:
    """The module's syntax tree. The integration is written for Home Assistant's Python (3.14):
    on an older interpreter a statement it cannot parse (``type X = ...``) becomes ``pass`` at
    the same place, so the imports around it, and their line numbers, are still read."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for _ in range(50):
        try:
            return ast.parse("\n".join(lines), str(path))
        except SyntaxError as exc:
            n = (exc.lineno or 0) - 1
            if not 0 <= n < len(lines) or lines[n].strip() == "pass":
                raise
            indent = lines[n][: len(lines[n]) - len(lines[n].lstrip())]
            lines[n] = indent + "pass"
    return ast.parse("\n".join(lines), str(path))


def module_edges(mod: Module, modules: dict[str, Module]) -> Iterator[Edge]:
    tree = parse(mod.path)
    typing_only = _type_checking_lines(tree)

    def ours(name: str) -> str | None:
        """The longest prefix of ``name`` that is one of our modules."""
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        how = "type-checking import" if getattr(node, "lineno", 0) in typing_only else "import"
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [t for a in node.names if (t := ours(a.name)) is not None]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(mod, node.level, node.module) if node.level else (node.module or "")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target = full if full in modules else ours(base)
                if target is not None:
                    targets.append(target)
        elif isinstance(node, ast.Call) and _is_import_call(node) and node.args:
            found = _dynamic_prefix(mod, node.args[0])
            if found is None:
                continue
            text, complete = found
            if text.startswith("."):
                text = _resolve_relative(mod, len(text) - len(text.lstrip(".")), text.lstrip(".") or None)
            how = "importlib"
            if complete:
                targets = [t for t in [ours(text)] if t is not None]
            else:
                targets = sorted(m for m in modules if m.startswith(text))
        for target in targets:
            if target != mod.name:
                yield Edge(mod.name, target, getattr(node, "lineno", 0), how)


def import_graph(repo: Path = REPO, roots: dict[str, Path] = ROOTS) -> dict[str, list[Edge]]:
    """module -> its outgoing edges (one per import site)."""
    modules = find_modules(repo, roots)
    return {name: list(module_edges(mod, modules)) for name, mod in modules.items()}


# ---- circles -------------------------------------------------------------------------------

def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    succ = {m: sorted({e.target for e in edges if e.target in graph}) for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp: list[str] = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def one_cycle(graph: dict[str, list[Edge]], component: Iterable[str]) -> list[Edge]:
    """A shortest circle through the component's first module, as the edges that make it."""
    members = set(component)
    start = min(members)
    prev: dict[str, Edge] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for e in sorted(graph[node], key=lambda e: (e.target, e.line)):
                if e.target not in members:
                    continue
                if e.target == start:
                    path = [e]
                    while path[0].source != start:
                        path.insert(0, prev[path[0].source])
                    return path
                if e.target not in seen:
                    seen.add(e.target)
                    prev[e.target] = e
                    nxt_frontier.append(e.target)
        frontier = nxt_frontier
    return []  # unreachable for a strongly connected component


def circles(graph: dict[str, list[Edge]]) -> list[str]:
    out = []
    for comp in strongly_connected(graph):
        cycle = one_cycle(graph, comp)
        text = "\n      ".join(str(e) for e in cycle)
        out.append(f"circle among {', '.join(comp)}:\n      {text}")
    return out


# ---- layer rules -------------------------------------------------------------------------

def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


#: what server/ and monitor/ may import of drivers/
DRIVER_API = ("nutbridge.drivers", "nutbridge.drivers.base")
#: the module that builds the bridge process, and the command line that runs it
COMPOSITION_ROOT = "nutbridge.serve"
SERVE_COMMAND = ("nutbridge.server.main", "nutbridge.upsd_main")
#: the front ends beside upsd, wired by the composition root only
FRONT_ENDS = ("nutbridge.web", "nutbridge.mqtt")


def layer_violations(graph: dict[str, list[Edge]]) -> list[str]:
    out: list[str] = []
    for edges in graph.values():
        for e in edges:
            src, dst = e.source, e.target
            if _under(src, "nutbridge.protocol") and _under(dst, "nutbridge") \
                    and not _under(dst, "nutbridge.protocol"):
                out.append(f"protocol/ imports something of ours outside protocol/: {e}")
            if _under(src, "nutbridge.drivers") and any(
                    _under(dst, f"nutbridge.{p}") for p in ("server", "tools", "monitor")):
                out.append(f"drivers/ imports server/, tools/ or monitor/: {e}")
            if (_under(src, "nutbridge.server") or _under(src, "nutbridge.monitor")) \
                    and _under(dst, "nutbridge.drivers") and dst not in DRIVER_API:
                out.append(f"{src.split('.')[1]}/ imports a driver module (only nutbridge.drivers and "
                           f"nutbridge.drivers.base are the driver API): {e}")
            if _under(src, "nutbridge.server") and _under(dst, "nutbridge.monitor"):
                out.append(f"server/ imports monitor/ (the composition root wires them): {e}")
            if _under(src, "custom_components.nut_bridge") and _under(dst, "nutbridge") \
                    and not _under(dst, "nutbridge.client"):
                out.append(f"the integration imports nutbridge beyond the client library: {e}")
            if _under(src, "nutbridge.simulation") and _under(dst, "nutbridge") and not (
                    _under(dst, "nutbridge.simulation") or _under(dst, "nutbridge.protocol")):
                out.append(f"simulation/ imports something of ours beyond protocol/: {e}")
            front = next((f for f in FRONT_ENDS if _under(src, f)), None)
            if front and any(_under(dst, f"nutbridge.{p}") for p in ("drivers", "monitor", "tools")):
                out.append(f"{front.split('.')[1]}/ imports drivers/, monitor/ or tools/ (front ends "
                           f"read the device state): {e}")
            if any(_under(dst, f) for f in FRONT_ENDS) and not any(_under(src, f) for f in FRONT_ENDS) \
                    and src != COMPOSITION_ROOT:
                out.append(f"a front end is imported by something other than the composition root: {e}")
            if dst == COMPOSITION_ROOT and src not in SERVE_COMMAND:
                out.append(f"the composition root is imported by a part it wires: {e}")
    return out


# ---- driver family shape -------------------------------------------------------------------

#: sans-IO module names inside a family package (bytes/values in, typed values out)
SANS_IO = ("protocol", "table", "mapper", "status", "q1", "voltronic", "descriptor", "values", "usages",
           "locate", "mirror", "usb", "device", "zinto", "ablerex", "gtec", "masterguard")
#: modules that do I/O or hold the device state, never imported by a sans-IO module
IO_MODULES = ("asyncio", "socket", "selectors", "ssl", "threading", "subprocess", "serial", "usb",
              "pysnmp", "nutbridge.state")


def _direct_imports(path: Path) -> list[tuple[str, int]]:
    """Every module name a file imports, absolute as written (relative ones are ours)."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.module, node.lineno))
    return out


def family_shape_violations(modules: dict[str, Module], graph: dict[str, list[Edge]]) -> list[str]:
    out: list[str] = []
    for name, mod in modules.items():
        parts = name.split(".")
        if parts[:2] != ["nutbridge", "drivers"] or len(parts) < 4:
            continue
        if parts[-1] in SANS_IO:
            for imported, line in _direct_imports(mod.path):
                if any(_under(imported, io) for io in IO_MODULES):
                    out.append(f"sans-IO module {name} (line {line}) imports {imported}")
            for e in graph.get(name, []):
                if _under(e.target, "nutbridge.state") or e.target.endswith(".driver"):
                    out.append(f"sans-IO module imports the state store or a driver: {e}")
        family = ".".join(parts[:3])
        if any(p in ("subdrivers", "mibs") for p in parts[3:]):
            for e in graph.get(name, []):
                if e.target in (f"{family}.mapper", f"{family}.driver"):
                    out.append(f"a table module imports the mapper or the driver: {e}")
    return out


def test_every_driver_family_has_the_same_shape() -> None:
    from nutbridge import drivers

    modules = find_modules(REPO)
    graph = import_graph()
    found = family_shape_violations(modules, graph)
    assert not found, "driver family shape (docs/architecture.md):\n  " + "\n  ".join(found)
    families = {n.split(".")[2] for n, m in modules.items()
                if n.startswith("nutbridge.drivers.") and m.is_package}
    assert families >= {"qx", "apcsmart", "powerman", "usbhid", "snmp", "dummy", "repeater", "simulated"}
    for family in families:
        assert f"nutbridge.drivers.{family}.driver" in modules, family
    targets = {**drivers._REGISTRY, "dummy-ups (repeater mode)": drivers._REPEATER}
    for driver_name, target in targets.items():
        module, _, cls = target.partition(":")
        assert module.startswith("nutbridge.drivers.") and module.endswith(".driver") \
            and module.count(".") == 3, (driver_name, target)
        assert f"class {cls}(" in modules[module].path.read_text(encoding="utf-8"), (driver_name, target)


def test_the_shape_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    base = tmp_path / "nutbridge" / "drivers" / "fam"
    (base / "mibs").mkdir(parents=True)
    for f in ("../__init__", "../../__init__", "../../state", "__init__", "mibs/__init__", "driver",
              "mapper"):
        (base / f"{f}.py").resolve().write_text("")
    (base / "protocol.py").write_text("import asyncio\nfrom ...state import Device\n")
    (base / "mibs" / "x.py").write_text("from ..mapper import M\n")
    roots = {"nutbridge": Path("nutbridge")}
    modules = find_modules(tmp_path, roots)
    found = family_shape_violations(modules, import_graph(tmp_path, roots))
    assert any("imports asyncio" in f for f in found), found
    assert any("nutbridge.state" in f for f in found), found
    assert any("table module imports the mapper" in f for f in found), found


# ---- the tests -----------------------------------------------------------------------------

def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The walker itself: relative, function-level, TYPE_CHECKING and importlib imports are edges."""
    pkg = tmp_path / "src" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "if TYPE_CHECKING:\n"
        "    from .b import X\n"
        "def f():\n"
        "    from . import c\n"
        "    importlib.import_module(f'{__package__}.sub.{f}')\n"
        "    importlib.import_module('pkg.d')\n")
    for name in ("b", "c", "d"):
        (pkg / f"{name}.py").write_text("import json\n")
    (pkg / "sub" / "e.py").write_text("from ..a import f\n")
    graph = import_graph(tmp_path, {"pkg": Path("src/pkg")})
    assert {(e.target, e.how) for e in graph["pkg.a"]} == {
        ("pkg.b", "type-checking import"), ("pkg.c", "import"), ("pkg.d", "importlib"),
        ("pkg.sub.e", "importlib")}
    assert [e.target for e in graph["pkg.sub.e"]] == ["pkg.a"]
    assert circles(graph) and "pkg.a" in circles(graph)[0] and "pkg.sub.e" in circles(graph)[0]


def test_each_rule_catches_what_it_forbids() -> None:
    bad = [
        ("nutbridge.protocol.wire", "nutbridge.state"),
        ("nutbridge.drivers.dummy.driver", "nutbridge.tools.upsc"),
        ("nutbridge.server.core", "nutbridge.drivers.usbhid.driver"),
        ("nutbridge.server.upsd", "nutbridge.monitor"),
        ("nutbridge.monitor.killpower", "nutbridge.drivers.repeater.driver"),
        ("custom_components.nut_bridge.coordinator", "nutbridge.protocol.wire"),
        ("nutbridge.monitor.serve", "nutbridge.serve"),
        ("nutbridge.simulation.megatec", "nutbridge.drivers.qx.q1"),
        ("nutbridge.web.server", "nutbridge.drivers.simulated.driver"),
        ("nutbridge.mqtt.publisher", "nutbridge.monitor.serve"),
        ("nutbridge.web.page", "nutbridge.serve"),
        ("nutbridge.server.upsd", "nutbridge.web.server"),
        ("nutbridge.drivers.base", "nutbridge.mqtt.discovery"),
    ]
    good = [
        ("nutbridge.protocol.wire", "nutbridge.protocol.errors"),
        ("nutbridge.server.core", "nutbridge.state"),
        ("nutbridge.server.core", "nutbridge.drivers.base"),
        ("nutbridge.monitor.killpower", "nutbridge.drivers"),
        ("custom_components.nut_bridge.coordinator", "nutbridge.client.push"),
        ("nutbridge.server.main", "nutbridge.serve"),
        ("nutbridge.serve", "nutbridge.monitor.serve"),
        ("nutbridge.simulation.usbdump", "nutbridge.protocol.tokenizer"),
        ("nutbridge.drivers.usbhid.driver", "nutbridge.simulation.fakeusb"),
        ("nutbridge.serve", "nutbridge.web.server"),
        ("nutbridge.mqtt.publisher", "nutbridge.server.frontend"),
        ("nutbridge.web.page", "nutbridge.state"),
    ]
    for src, dst in bad:
        assert layer_violations({src: [Edge(src, dst, 1, "import")]}), (src, dst)
    for src, dst in good:
        assert not layer_violations({src: [Edge(src, dst, 1, "import")]}), (src, dst)


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, "import circles (docs/architecture.md):\n  " + "\n  ".join(found)


def test_layers_import_only_what_they_may() -> None:
    found = layer_violations(import_graph())
    assert not found, "dependency rules broken (docs/architecture.md):\n  " + "\n  ".join(found)
