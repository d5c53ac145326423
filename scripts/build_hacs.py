#!/usr/bin/env python3
"""Build the HACS release asset dist/nut_bridge.zip.

The client library's distribution, nutbridge-ups, is not on PyPI yet (and the PyPI
project "nutbridge" is an unrelated one, docs/packaging.md), so a manifest requirement
cannot provide it. Instead the zip carries, inside the integration, a copy of exactly the
``nutbridge`` modules the integration imports (found by following import statements
from the integration's modules, transitively) under ``_vendor/nutbridge/``, and
every import of ``nutbridge`` -- in the integration's modules and in the copy -- is
rewritten into a relative import of that copy. Nothing outside the integration's
package is touched: no sys.path entries, no top-level ``nutbridge`` module.

The build fails if an import of ``nutbridge`` cannot be rewritten or is left over,
or if a vendored module imports anything but the standard library (and, when
homeassistant is installed where the build runs, the packages it depends on), or if
manifest.json's version is not the library's ``nutbridge.__version__`` (the one
version of the project, which the wheel and ``nutbridge --version`` also use).

The zip holds the integration directory's contents at its root: HACS extracts it
into custom_components/<domain>/ (hacs.json: "zip_release": true, "filename").

    python3 scripts/build_hacs.py [--out dist/nut_bridge.zip] [--expect-version X.Y.Z]
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import re
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = REPO / "custom_components" / "nut_bridge"
LIBRARY_ROOT = REPO / "bridge"  # holds the nutbridge package
LIBRARY = "nutbridge"
VENDOR = "_vendor"  # sub-package of the integration holding the copy
DEFAULT_OUT = REPO / "dist" / "nut_bridge.zip"

SKIP_DIRS = {"__pycache__", VENDOR}
SKIP_SUFFIXES = {".pyc", ".pyo"}
# The integration is written for Home Assistant's Python (PEP 695 aliases and more).
MIN_PYTHON = (3, 14)
# Reproducible archives: every entry gets this timestamp unless SOURCE_DATE_EPOCH is set.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The package cannot be built honestly; the message says why."""


Module = tuple[str, ...]  # dotted name as parts, e.g. ("nutbridge", "client", "core")


@dataclass
class Source:
    """One Python file to ship: where it comes from, where it goes, which package it is in."""

    path: Path
    dest: PurePosixPath  # inside the integration directory
    package: Module  # package the module lives in, relative to the integration package
    text: str = ""
    tree: ast.Module = field(default_factory=lambda: ast.Module(body=[], type_ignores=[]))

    def parse(self) -> None:
        self.text = self.path.read_text(encoding="utf-8")
        try:
            self.tree = ast.parse(self.text, filename=str(self.path))
        except SyntaxError as err:
            raise BuildError(f"{self.path}: {err}") from err


def _is_library(name: str | None) -> bool:
    return name is not None and (name == LIBRARY or name.startswith(LIBRARY + "."))


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _show(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _where(src: Source, node: ast.AST) -> str:
    return f"{_show(src.path)}:{getattr(node, 'lineno', '?')}"


# ---------------------------------------------------------------- finding the modules


def library_file(module: Module) -> Path | None:
    """The file of a nutbridge module (package: its __init__.py), or None."""
    base = LIBRARY_ROOT.joinpath(*module)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _absolute(module: Module, is_package: bool, node: ast.ImportFrom) -> Module:
    """The absolute module an ImportFrom in ``module`` refers to (its ``from`` part)."""
    if node.level == 0:
        return tuple((node.module or "").split("."))
    package = module if is_package else module[:-1]
    if node.level - 1 > len(package) - 1:
        raise BuildError(f"{'.'.join(module)}: relative import beyond the top-level package")
    base = package[: len(package) - (node.level - 1)]
    return base + tuple(node.module.split(".")) if node.module else base


def _stdlib() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names) | {"__future__"}


def _ha_provided() -> frozenset[str]:
    """Top-level modules of the distributions homeassistant depends on (if it is installed here)."""
    try:
        requires = importlib.metadata.requires("homeassistant") or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = {norm(m.group(0)) for r in requires if "extra ==" not in r
              if (m := re.match(r"[A-Za-z0-9._-]+", r))}
    return frozenset(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(norm(d) in wanted for d in dists)
    )


def vendored_closure(roots: set[Module], allowed: frozenset[str]) -> dict[Module, Path]:
    """Every nutbridge module needed to import ``roots``: parents packages included, imports followed."""
    found: dict[Module, Path] = {}
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in found:
            continue
        path = library_file(module)
        if path is None:
            raise BuildError(f"import of {'.'.join(module)}: no such module under {LIBRARY_ROOT}")
        found[module] = path
        # Importing a.b.c imports the packages a and a.b first.
        todo.extend(module[:n] for n in range(1, len(module)))
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [tuple(alias.name.split(".")) for alias in node.names]
            else:
                base = _absolute(module, is_package, node)
                # `from pkg import name` may name a submodule.
                targets = [base] + [
                    (*base, alias.name) for alias in node.names
                    if base[0] == LIBRARY and alias.name != "*"
                    and library_file((*base, alias.name)) is not None
                ]
            for target in targets:
                if target[0] == LIBRARY:
                    todo.append(target)
                elif target[0] not in allowed:
                    raise BuildError(
                        f"{_show(path)}:{node.lineno}: vendored code imports "
                        f"{'.'.join(target)!r}, which is neither stdlib nor shipped with Home Assistant"
                    )
    return found


# ---------------------------------------------------------------- rewriting imports


def _relative(package: Module, target: Module) -> tuple[int, str | None]:
    """(level, module) of a relative import of ``target`` from a module in ``package``."""
    common = 0
    while common < min(len(package), len(target)) and package[common] == target[common]:
        common += 1
    rest = target[common:]
    return len(package) - common + 1, ".".join(rest) if rest else None


def _vendored(name: str) -> Module:
    return (VENDOR, *name.split("."))


def _rewrite_node(src: Source, node: ast.Import | ast.ImportFrom) -> str | None:
    """Replacement source for an import of nutbridge, or None when the node imports no nutbridge."""
    if isinstance(node, ast.ImportFrom):
        if node.level or not _is_library(node.module):
            return None
        level, module = _relative(src.package, _vendored(node.module or ""))
        return ast.unparse(ast.ImportFrom(module=module, names=node.names, level=level))
    if not any(_is_library(alias.name) for alias in node.names):
        return None
    parts: list[str] = []
    for alias in node.names:
        if not _is_library(alias.name):
            parts.append(ast.unparse(ast.Import(names=[alias])))
            continue
        if alias.asname is None:
            # `import nutbridge.x` binds the global name `nutbridge`: no relative equivalent.
            raise BuildError(
                f"{_where(src, node)}: `import {alias.name}` cannot be vendored; "
                f"use `from ... import ...` or `import {alias.name} as name`"
            )
        *parent, leaf = _vendored(alias.name)
        level, module = _relative(src.package, tuple(parent))
        parts.append(ast.unparse(ast.ImportFrom(
            module=module, names=[ast.alias(name=leaf, asname=alias.asname)], level=level
        )))
    return "; ".join(parts)


def rewrite(src: Source) -> str:
    """The source with every nutbridge import turned into a relative import of the copy."""
    data = src.text.encode("utf-8")
    line_starts = [0]
    for line in data.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    edits: list[tuple[int, int, bytes]] = []
    for node in _imports(src.tree):
        replacement = _rewrite_node(src, node)
        if replacement is None:
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None
        # ast columns are UTF-8 byte offsets.
        start = line_starts[node.lineno - 1] + node.col_offset
        end = line_starts[node.end_lineno - 1] + node.end_col_offset
        edits.append((start, end, replacement.encode("utf-8")))
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new + data[end:]
    return data.decode("utf-8")


_DYNAMIC_IMPORTERS = {"import_module", "__import__", "find_spec"}


def leftovers(path: str, text: str) -> list[str]:
    """Every way the rewritten source still reaches for a top-level nutbridge."""
    problems = []
    tree = ast.parse(text, filename=path)
    for node in _imports(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and _is_library(node.module):
                problems.append(f"{path}:{node.lineno}: from {node.module} import ...")
        elif any(_is_library(alias.name) for alias in node.names):
            problems.append(f"{path}:{node.lineno}: import {', '.join(a.name for a in node.names)}")
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and call.args:
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = call.args[0]
            if (name in _DYNAMIC_IMPORTERS and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _is_library(arg.value)):
                problems.append(f"{path}:{call.lineno}: dynamic import of {arg.value!r}")
    return problems


# ---------------------------------------------------------------- the package


@dataclass
class Package:
    files: dict[PurePosixPath, bytes]  # path inside the integration directory -> content
    vendored: list[str]  # dotted names of the copied nutbridge modules
    version: str


def integration_sources() -> tuple[list[Source], dict[PurePosixPath, bytes]]:
    """The integration's Python sources, and its other files verbatim."""
    sources: list[Source] = []
    others: dict[PurePosixPath, bytes] = {}
    if (INTEGRATION / VENDOR).exists():
        raise BuildError(f"{INTEGRATION / VENDOR} exists in the source tree; the build creates it")
    for dirpath, dirnames, filenames in os.walk(INTEGRATION):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix in SKIP_SUFFIXES:
                continue
            rel = PurePosixPath(path.relative_to(INTEGRATION).as_posix())
            if path.suffix == ".py":
                sources.append(Source(path, rel, tuple(rel.parent.parts)))
            else:
                others[rel] = path.read_bytes()
    return sources, others


def build_package() -> Package:
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    if any(re.match(r"nut[-_]?bridge\b", r, re.IGNORECASE) for r in manifest.get("requirements", [])):
        raise BuildError("manifest.json requires nutbridge-ups (or the unrelated PyPI project nutbridge); "
                         "the library is vendored instead")
    sources, files = integration_sources()
    roots: set[Module] = set()
    for src in sources:
        src.parse()
        for node in _imports(src.tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_library(node.module):
                base = tuple((node.module or "").split("."))
                roots.add(base)
                roots.update((*base, a.name) for a in node.names if library_file((*base, a.name)))
            elif isinstance(node, ast.Import):
                roots.update(tuple(a.name.split(".")) for a in node.names if _is_library(a.name))
    if not roots:
        raise BuildError(f"the integration imports nothing from {LIBRARY}: nothing to vendor")

    allowed = _stdlib() | _ha_provided()
    closure = vendored_closure(roots, allowed)
    for module, path in sorted(closure.items()):
        rel = path.relative_to(LIBRARY_ROOT)
        dest = PurePosixPath(VENDOR, rel.as_posix())
        package = (VENDOR, *module) if path.name == "__init__.py" else (VENDOR, *module[:-1])
        src = Source(path, dest, package)
        src.parse()
        sources.append(src)

    for src in sources:
        text = rewrite(src)
        if problems := leftovers(str(src.dest), text):
            raise BuildError("unrewritten nutbridge imports:\n  " + "\n  ".join(problems))
        compile(text, str(src.dest), "exec")
        files[src.dest] = text.encode("utf-8")

    version = _library_version()
    files[PurePosixPath(VENDOR, "__init__.py")] = (
        f'"""Vendored copy of {LIBRARY} {version} (distribution nutbridge-ups, MIT license): the\n'
        f"modules this integration imports, with their imports made relative. Generated by\n"
        f'scripts/build_hacs.py from bridge/{LIBRARY}; do not edit."""\n'
    ).encode()
    return Package(files, sorted(".".join(m) for m in closure), version)


def _library_version() -> str:
    tree = ast.parse((LIBRARY_ROOT / LIBRARY / "__init__.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)):
            return str(node.value.value)
    return "unknown"


def write_zip(package: Package, out: Path) -> None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = ZIP_EPOCH
    if epoch:
        stamp = time.gmtime(max(int(epoch), 315532800))[:6]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(package.files, key=str):
            info = zipfile.ZipInfo(str(name), date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, package.files[name])
    tmp.replace(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"zip to write (default {DEFAULT_OUT})")
    parser.add_argument("--expect-version", metavar="VERSION",
                        help="fail unless manifest.json's version is this (e.g. the release tag)")
    args = parser.parse_args(argv)
    if sys.version_info < MIN_PYTHON:
        print(f"build_hacs: needs Python >= {'.'.join(map(str, MIN_PYTHON))} to parse the integration "
              f"(Home Assistant's Python); this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    if args.expect_version and args.expect_version.removeprefix("v") != manifest.get("version"):
        print(f"build_hacs: manifest.json version {manifest.get('version')!r} does not match "
              f"{args.expect_version!r}", file=sys.stderr)
        return 1
    if manifest.get("version") != (library_version := _library_version()):
        print(f"build_hacs: manifest.json version {manifest.get('version')!r} is not {LIBRARY}'s "
              f"{library_version!r} (bridge/{LIBRARY}/__init__.py): bump both together", file=sys.stderr)
        return 1
    try:
        package = build_package()
    except BuildError as err:
        print(f"build_hacs: {err}", file=sys.stderr)
        return 1
    write_zip(package, args.out)
    print(f"{args.out}: {len(package.files)} files, nut_bridge {manifest.get('version')}, "
          f"vendored {LIBRARY} {package.version}: {', '.join(package.vendored)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
