"""How a batch moves: submit (and cancel), tier progress and roll-up, retry."""
