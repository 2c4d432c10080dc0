"""Open the configured blob store. Kept apart from the runtime so a Ray worker can open it cheaply."""

from __future__ import annotations

from strataflow.blobs.base import BlobStore
from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_url and settings.blob_url.startswith("s3://"):
        from strataflow.blobs.s3 import S3BlobStore  # imported lazily: boto3 is heavy

        return S3BlobStore.from_settings(settings)
    if settings.blob_url and not settings.blob_url.startswith("file://"):
        raise ValueError(f"STRATAFLOW_BLOB_URL must be s3://bucket/prefix or empty, not {settings.blob_url!r}")
    return LocalBlobStore.from_data_dir(settings.data_dir, settings.base_url)
