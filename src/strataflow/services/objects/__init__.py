"""Bucket objects: create, read, list, aggregate; inline blobs turned into stored bytes."""
