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


# ---------------------------------------------------------------------------------------------
# Collections (issue 4). Their documents live in LanceDB (`strataflow.index`), not here.
# ---------------------------------------------------------------------------------------------


class Collection(Base):
    """A collection: one source (buckets or upstream collections) and exactly one extractor."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("namespace_id", "collection_name"),)

    collection_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    collection_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    feature_extractor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    vector_indexes: Mapped[list[Any]] = mapped_column(default=list)
    source_lineage: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    taxonomy_applications: Mapped[list[Any] | None] = mapped_column(default=None)
    cluster_applications: Mapped[list[Any] | None] = mapped_column(default=None)
    alert_applications: Mapped[list[Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CollectionSource(Base):
    """One edge of the collection DAG: a collection reads from a bucket or a collection.

    Kept as rows (not only inside `collections.source`) so "who reads from X" is an
    indexed lookup: delete checks, cycle checks and tier resolution use it.
    """

    __tablename__ = "collection_sources"

    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.collection_id", ondelete="CASCADE"), primary_key=True
    )
    source_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # bucket | collection
    source_id: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
