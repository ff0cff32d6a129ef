"""What every layer shares: the error tree, messages for people and logs, value checks, interrupts, the version."""
