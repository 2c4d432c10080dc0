"""Batches: membership, the wire view, create/read/patch/delete, processing on demand."""
