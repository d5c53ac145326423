"""``nutbridge events``: list the bridge's event history (docs/events.md)."""
