"""Blob bytes: the BlobStore protocol, implemented by the local directory and by S3."""

from strataflow.blobs.base import BlobInfo, BlobStore, WrittenBlob

__all__ = ["BlobInfo", "BlobStore", "WrittenBlob"]
