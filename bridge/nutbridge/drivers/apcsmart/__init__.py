"""apcsmart driver family."""
