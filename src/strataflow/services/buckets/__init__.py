"""Buckets: the schema-typed containers of objects, and their schema rules."""
