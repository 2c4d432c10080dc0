"""Documents of a collection: ids and the wire view, read/write, queries, lineage."""
