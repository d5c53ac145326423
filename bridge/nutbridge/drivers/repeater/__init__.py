"""repeater driver family."""
