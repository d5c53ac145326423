"""powerman driver family."""
