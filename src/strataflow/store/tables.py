"""The metadata tables. One row type per entity; flexible parts are JSON.

Tenancy is explicit in every row: organizations own namespaces and tasks,
namespaces own buckets, buckets own objects. Queries always filter by the
owner, so one organization can never reach another's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from strataflow.clock import utcnow
from strataflow.store.types import JsonType, Timestamp


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType, datetime: Timestamp}


class Organization(Base):
    __tablename__ = "organizations"

    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    internal_id: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Namespace(Base):
    __tablename__ = "namespaces"
    __table_args__ = (UniqueConstraint("org_id", "namespace_name"),)

    namespace_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"), index=True)
    namespace_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    feature_extractors: Mapped[list[Any]] = mapped_column(default=list)
    payload_indexes: Mapped[list[Any] | None] = mapped_column(default=None)
    auto_create_indexes: Mapped[bool] = mapped_column(Boolean, default=False)
    infrastructure: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Bucket(Base):
    __tablename__ = "buckets"
    __table_args__ = (UniqueConstraint("namespace_id", "bucket_name"),)

    bucket_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    bucket_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    bucket_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    unique_key: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")
    is_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_upload_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BucketObject(Base):
    __tablename__ = "objects"
    __table_args__ = (
        Index("ix_objects_bucket_created", "bucket_id", "created_at"),
        Index("ix_objects_bucket_hash", "bucket_id", "content_hash"),
        UniqueConstraint("bucket_id", "unique_key_value"),
    )

    object_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(String(40), index=True)
    key_prefix: Mapped[str | None] = mapped_column(String(1024), default=None)
    status: Mapped[str] = mapped_column(String(32), default="DRAFT")
    blobs: Mapped[list[Any]] = mapped_column(default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    source_details: Mapped[list[Any]] = mapped_column(default=list)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    unique_key_value: Mapped[str | None] = mapped_column(String(1024), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Task(Base):
    """A unit of asynchronous work. Tasks never expire; finished ones stay queryable."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_org_created", "org_id", "created_at"),
        Index("ix_tasks_claim", "status", "task_type"),
    )

    task_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    namespace_id: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    task_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    inputs: Mapped[list[Any] | None] = mapped_column(default=None)
    outputs: Mapped[list[Any] | None] = mapped_column(default=None)
    additional_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StatusEvent(Base):
    """Every status change of a task, tier or batch, with the reason it happened."""

    __tablename__ = "status_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------------------
# Uploads (issue 3): presigned uploads and their confirmation.
# ---------------------------------------------------------------------------


class Upload(Base):
    """One presigned upload: the file a client PUTs to blob storage, then confirms.

    `version` makes every UPDATE conditional on the row being unchanged since it
    was read, so two writers racing on one upload can never both succeed.
    """

    __tablename__ = "uploads"
    __table_args__ = (
        Index("ix_uploads_bucket_created", "bucket_id", "created_at"),
        Index("ix_uploads_bucket_hash", "bucket_id", "content_sha256"),
        Index("ix_uploads_status_expires", "status", "expires_at"),
    )

    upload_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)  # declared at create
    stored_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)  # verified at confirm
    presigned_url_expiration: Mapped[int] = mapped_column(Integer)
    s3_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    create_object_on_confirm: Mapped[bool] = mapped_column(Boolean, default=True)
    object_metadata: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    blob_property: Mapped[str | None] = mapped_column(String(100), default=None)
    blob_type: Mapped[str | None] = mapped_column(String(32), default=None)
    file_hash: Mapped[str | None] = mapped_column(String(64), default=None)  # the client's SHA-256
    content_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # ours, of stored bytes
    skip_duplicates: Mapped[bool] = mapped_column(Boolean, default=True)
    is_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of_upload_id: Mapped[str | None] = mapped_column(String(40), default=None)
    skipped_unique_key: Mapped[bool] = mapped_column(Boolean, default=False)
    existing_object_id: Mapped[str | None] = mapped_column(String(40), default=None)
    etag: Mapped[str | None] = mapped_column(String(128), default=None)
    object_id: Mapped[str | None] = mapped_column(String(40), default=None)
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    multipart_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    part_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    __mapper_args__ = {"version_id_col": version}
