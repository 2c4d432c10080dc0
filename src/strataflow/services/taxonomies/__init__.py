"""Taxonomies: similarity joins from documents to the nodes of a reference collection."""
