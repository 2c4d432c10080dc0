"""The running system's parts, built once from Settings: database, blobs, job runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from strataflow.blobs import BlobStore
from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.engine.jobs import JobContext, JobRunner
from strataflow.services.auth import IssuedKey, bootstrap
from strataflow.services.blob_sources import SourceLimits
from strataflow.services.objects import ObjectWriter
from strataflow.store.db import Database
from strataflow.store.migrate import upgrade_to_head

log = logging.getLogger("strataflow")

# Importing these registers their background job handlers.
import strataflow.services.buckets  # noqa: E402,F401
import strataflow.services.namespaces  # noqa: E402,F401
import strataflow.services.upload_tasks  # noqa: E402,F401


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_url and settings.blob_url.startswith("s3://"):
        from strataflow.blobs.s3 import S3BlobStore  # imported lazily: boto3 is heavy

        return S3BlobStore.from_settings(settings)
    if settings.blob_url and not settings.blob_url.startswith("file://"):
        raise ValueError(f"STRATAFLOW_BLOB_URL must be s3://bucket/prefix or empty, not {settings.blob_url!r}")
    return LocalBlobStore.from_data_dir(settings.data_dir, settings.base_url)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    jobs: JobRunner
    first_key: IssuedKey | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def object_writer(self) -> ObjectWriter:
        limits = SourceLimits(self.settings.max_inline_blob_bytes, self.settings.url_fetch_timeout_s)
        return ObjectWriter(self.blobs, limits)

    def close(self) -> None:
        self.jobs.stop()
        self.db.dispose()


def open_runtime(settings: Settings) -> Runtime:
    """Create the data dir, migrate the schema, and make the first admin key if needed."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    upgrade_to_head(db)
    blobs = open_blob_store(settings)
    with db.transaction() as session:
        first_key = bootstrap(session, settings.admin_key_path, settings.api_key)
    context = JobContext(db=db, blobs=blobs, settings=settings)
    jobs = JobRunner(context, settings.task_workers, settings.task_poll_interval_s)
    return Runtime(settings=settings, db=db, blobs=blobs, jobs=jobs, first_key=first_key)
