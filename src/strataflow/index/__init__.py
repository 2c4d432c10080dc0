"""Documents and vectors in LanceDB: one table per collection."""
