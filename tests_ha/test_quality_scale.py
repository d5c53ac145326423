"""quality_scale.yaml: hassfest's rules and schema, and evidence in the code for "done" rules."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from .integration_files import (
    BRAND,
    BRAND_IMAGES,
    DISCOVERY_KEYS,
    HA_COMPONENTS,
    INTEGRATION,
    calls_named,
    function_defs,
    load_json,
    load_yaml,
    platform_modules,
    sources,
)

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
    data = load_yaml(INTEGRATION / "quality_scale.yaml")
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
    installed = {frozenset(load_yaml(p)["rules"]) for p in HA_COMPONENTS.glob("*/quality_scale.yaml")}
    assert installed == {ALL_RULES}
    rules = _quality_scale()
    assert set(rules) == ALL_RULES, (ALL_RULES - set(rules), set(rules) - ALL_RULES)
    for rule, (status, comment) in rules.items():
        if status != "done":
            assert comment and comment.strip(), f"{rule}: {status} needs a comment saying why"


def _defines(tree: ast.AST, name: str) -> bool:
    return name in function_defs(tree)


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


def _evidence() -> dict[str, str | None]:
    """For rules the code can show: None when it does, else what is missing."""
    src = {p.stem: t for p, t in sources().items() if p.parent == INTEGRATION}
    init, flow = src["__init__"], src.get("config_flow", ast.Module(body=[], type_ignores=[]))
    manifest = load_json(INTEGRATION / "manifest.json")
    discovery = [k for k in DISCOVERY_KEYS if k in manifest and _defines(flow, f"async_step_{k}")]
    setup_entry = function_defs(init).get("async_setup_entry")

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
                for c in calls_named(flow, "_abort_if_unique_id_configured")
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
            all(_module_level(src[p], "PARALLEL_UPDATES") for p in platform_modules()),
            "a platform module without PARALLEL_UPDATES",
        ),
        "reauthentication-flow": check(_defines(flow, "async_step_reauth"), "no async_step_reauth"),
        "reconfiguration-flow": check(_defines(flow, "async_step_reconfigure"), "no async_step_reconfigure"),
        "repair-issues": check(
            any(calls_named(t, "async_create_issue") for t in src.values()), "no async_create_issue"
        ),
        "runtime-data": check(_assigns_attr(init, "runtime_data"), "entry.runtime_data is never set"),
        "stale-devices": check(
            _defines(init, "async_remove_config_entry_device")
            or any(calls_named(t, "async_update_device") for t in src.values()),
            "no device removal",
        ),
        "test-before-setup": check(
            setup_entry is not None
            and (
                bool(calls_named(setup_entry, "async_config_entry_first_refresh"))
                or any(isinstance(n, ast.Raise) for n in ast.walk(setup_entry))
            ),
            "async_setup_entry neither refreshes first nor raises",
        ),
        "unique-config-entry": check(
            bool(
                calls_named(flow, "_abort_if_unique_id_configured")
                or calls_named(flow, "_async_abort_entries_match")
            ),
            "the config flow never aborts on an existing entry",
        ),
    }


def test_quality_scale_done_rules_have_evidence() -> None:
    rules = _quality_scale()
    assert set(_evidence()) <= ALL_RULES
    missing = {rule: why for rule, why in _evidence().items() if rules[rule][0] == "done" and why is not None}
    assert not missing, f"marked done, but: {missing}"
