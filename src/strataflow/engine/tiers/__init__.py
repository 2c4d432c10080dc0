"""Running one tier of a batch: the executor, one collection run, the Ray Data pipeline driver and stage,
results and report."""
