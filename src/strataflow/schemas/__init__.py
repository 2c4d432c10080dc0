"""Pydantic wire models, one module per resource, matching the Mixpeek v1 contract."""
