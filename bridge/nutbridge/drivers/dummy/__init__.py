"""dummy driver family."""
