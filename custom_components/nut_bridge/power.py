"""Derived power and energy sensors (placeholder: filled in next)."""

from __future__ import annotations

from .coordinator import NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity


def build_power_sensors(coordinator: NutBridgeCoordinator, state: UpsState) -> list[NutBridgeEntity]:
    """The derived power/energy sensors of one UPS."""
    return []
