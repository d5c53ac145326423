"""upsd: the NUT network server (sans-IO core + asyncio layer)."""
