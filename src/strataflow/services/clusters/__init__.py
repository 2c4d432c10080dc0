"""Clusters: definitions over collections, their runs, groups, enrichment and pictures."""
