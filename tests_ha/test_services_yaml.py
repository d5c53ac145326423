"""services.yaml and icons.json: each service's texts and icon, each icon's translation key,
and the services the integration registers against services.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from custom_components.nut_bridge.const import DOMAIN

from .integration_files import INTEGRATION, load_json, load_yaml, strings_json


def _services_yaml() -> dict[str, Any]:
    path = INTEGRATION / "services.yaml"
    return load_yaml(path) if path.is_file() else {}


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
    strings = strings_json()
    services = _services_yaml()
    icons = load_json(INTEGRATION / "icons.json").get("services", {})
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
    icons = load_json(INTEGRATION / "icons.json")
    entity = strings_json().get("entity", {})

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
