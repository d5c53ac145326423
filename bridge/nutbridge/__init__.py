"""NUT Bridge: Network UPS Tools, embedded, in Python."""

__version__ = "0.1.0"
