"""strings.json and its translation: every translation key the code uses (entities,
exceptions, config flow) has its text, checked on the sources and on a running entry."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import EntityDescription
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_get_device_automations

from custom_components.nut_bridge.const import DOMAIN

from .conftest import Bridge, setup_entry
from .integration_files import (
    DISCOVERY_KEYS,
    INTEGRATION,
    callee,
    calls,
    calls_named,
    function_defs,
    load_json,
    modules,
    sources,
    strings_json,
)

# ---------------------------------------------------------------- read from the sources

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
    for module in modules():
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
    trees = sources()
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
            for func, call in calls(tree):
                sink = sinks.get(callee(call) or "")
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
        for func, call in calls(tree):
            name = callee(call) or ""
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
    assert load_json(INTEGRATION / "translations" / "en.json") == strings_json()


def test_entity_description_translation_keys() -> None:
    entity = strings_json()["entity"]
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
    for module in modules():
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
    exceptions = strings_json().get("exceptions", {})
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
    for path, tree in sources().items():
        for _, call in calls(tree):
            if callee(call) in EXCEPTION_CLASSES and any(k.arg == "translation_key" for k in call.keywords):
                domain = next((k.value for k in call.keywords if k.arg == "translation_domain"), None)
                ok = (isinstance(domain, ast.Name) and domain.id == "DOMAIN") or (
                    isinstance(domain, ast.Constant) and domain.value == DOMAIN
                )
                assert ok, f"{path.name}:{call.lineno}: translation_domain must be DOMAIN"


def test_config_flow_strings() -> None:
    config = strings_json()["config"]
    flow = sources()[INTEGRATION / "config_flow.py"]
    functions = function_defs(flow)
    missing: list[str] = []

    def need(section: str, key: str, where: int) -> None:
        if key not in config.get(section, {}):
            missing.append(f"config_flow.py:{where}: config.{section}.{key}")

    for _, call in calls(flow):
        name = callee(call)
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
    if any(f"async_step_{k}" in functions for k in DISCOVERY_KEYS) and calls_named(
        flow, "async_set_unique_id"
    ):
        need("abort", "already_in_progress", 0)
    assert not missing, missing


# ---------------------------------------------------------------- with Home Assistant running


async def test_config_flow_forms_describe_every_field(hass: HomeAssistant) -> None:
    steps = strings_json()["config"]["step"]
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
    strings = strings_json()
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
    assert set(strings_json()) <= known, set(strings_json()) - known
