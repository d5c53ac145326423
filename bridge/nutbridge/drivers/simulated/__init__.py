"""simulated driver family."""
