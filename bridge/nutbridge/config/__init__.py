"""NUT's own configuration files: ups.conf, upsd.conf, upsd.users (and hosts.allow/deny)."""

from .parser import ConfigError, Entry, read_entries

__all__ = ["ConfigError", "Entry", "read_entries"]
