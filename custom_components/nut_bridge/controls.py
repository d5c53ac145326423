"""What a UPS lets a client change: LIST CMD / LIST RW with TYPE, ENUM and RANGE."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nutbridge.client import NutError, ReconnectingClient

_LOGGER = logging.getLogger(__name__)


@dataclass
class UpsControls:
    """What a UPS lets a client change."""

    commands: frozenset[str] = frozenset()
    # RW variable -> its TYPE words (e.g. ("RW", "STRING:16"), ("RW", "RANGE")).
    types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def string_length(self, var: str) -> int | None:
        for word in self.types.get(var, ()):
            if word.upper().startswith("STRING:"):
                try:
                    return int(word.split(":", 1)[1])
                except ValueError:
                    return None
        return None

    def is_number(self, var: str) -> bool:
        return var in self.types and self.string_length(var) is None and var not in self.enums



async def async_fetch_controls(client: ReconnectingClient, ups: str) -> UpsControls:
    """Read the UPS's commands and writable variables; a variable that cannot be read is skipped."""
    controls = UpsControls(commands=frozenset(await client.list_cmd(ups)))
    for var in await client.list_rw(ups):
        try:
            types = await client.get_type(ups, var)
            controls.types[var] = types
            words = {w.upper() for w in types}
            if "ENUM" in words:
                controls.enums[var] = await client.list_enum(ups, var)
            if "RANGE" in words:
                bounds = [(float(lo), float(hi)) for lo, hi in await client.list_range(ups, var)]
                if bounds:
                    controls.ranges[var] = (min(b[0] for b in bounds), max(b[1] for b in bounds))
        except (NutError, ValueError) as err:
            _LOGGER.debug("Skipping RW variable %s of %s: %s", var, ups, err)
    return controls
