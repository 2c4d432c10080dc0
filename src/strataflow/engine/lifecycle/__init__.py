"""How a batch moves: submit, cancel, tier progress and roll-up, retry, processing on demand (trigger)."""
