"""Running one tier of a batch: the executor, the Ray Data pipeline driver and stage, one collection run, results, report."""
