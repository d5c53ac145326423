"""qx driver family."""
