"""Running asynchronous work: background API jobs now, batch tiers next."""
