"""Batches: membership, the wire view, create/read/patch/delete."""
