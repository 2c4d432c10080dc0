"""Feature extractors: pure functions from input rows to output rows, plus their catalogue."""
