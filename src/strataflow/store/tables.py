"""The metadata tables. One row type per entity; flexible parts are JSON.

Tenancy is explicit in every row: organizations own namespaces and tasks,
namespaces own buckets, buckets own objects. Queries always filter by the
owner, so one organization can never reach another's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from strataflow.clock import utcnow
from strataflow.statuses import Status
from strataflow.store.types import JsonType, StatusType, Timestamp


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JsonType, list[Any]: JsonType, datetime: Timestamp}


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
    status: Mapped[Status] = mapped_column(StatusType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Bucket(Base):
    __tablename__ = "buckets"
    __table_args__ = (UniqueConstraint("namespace_id", "bucket_name"),)

    bucket_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    bucket_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    bucket_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    unique_key: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    status: Mapped[Status] = mapped_column(StatusType)
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
    status: Mapped[Status] = mapped_column(StatusType)
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
    status: Mapped[Status] = mapped_column(StatusType)
    inputs: Mapped[list[Any] | None] = mapped_column(default=None)
    outputs: Mapped[list[Any] | None] = mapped_column(default=None)
    additional_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Grows by one with each claim; a runner's writes name the token it claimed with (engine/fencing.py).
    fence_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StatusEvent(Base):
    """Every status change of an entity, its creation included (`from_status` NULL), with the reason."""

    __tablename__ = "status_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- batches and their tiers (the batch engine) ----------------------------------


WEBHOOK_UNTOLD = "webhook_url IS NOT NULL AND (webhook_sent_at IS NULL OR webhook_sent_at < completed_at)"


class Batch(Base):
    """A group of objects pushed through the collection DAG, tier by tier."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_bucket_created", "bucket_id", "created_at"),
        # The event dispatcher's look for ended batches whose webhook was not told, every poll:
        # only batches with a webhook not yet sent for their last end are in it.
        Index(
            "ix_batches_webhook_untold",
            "completed_at",
            sqlite_where=text(WEBHOOK_UNTOLD),
            postgresql_where=text(WEBHOOK_UNTOLD),
        ),
    )

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(String(40), index=True)
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    status: Mapped[Status] = mapped_column(StatusType)
    batch_type: Mapped[str] = mapped_column(String(16), default="BUCKET")
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    collection_ids: Mapped[list[Any] | None] = mapped_column(default=None)
    dag_tiers: Mapped[list[Any] | None] = mapped_column(default=None)
    total_tiers: Mapped[int] = mapped_column(Integer, default=1)
    current_tier: Mapped[int | None] = mapped_column(Integer, default=None)
    manifest_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    internal_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    batch_name: Mapped[str | None] = mapped_column(String(256), default=None)
    # The collections asked for at creation (null: every collection fed by the bucket). Every
    # planning of the tiers (submit, resubmit) starts from it, so a rerun processes the same DAG.
    collection_scope: Mapped[list[Any] | None] = mapped_column(default=None)
    dedup_strategy: Mapped[str | None] = mapped_column(String(16), default=None)
    # Told once per run when the batch ends: sent when webhook_sent_at is null or older than completed_at.
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    retry_round: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BatchObject(Base):
    """Membership of an object in a batch: one row each, so 100k ids stay cheap to add and check."""

    __tablename__ = "batch_objects"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class BatchTier(Base):
    """One tier of a submitted batch: its own task, status, lease, counters and errors."""

    __tablename__ = "batch_tiers"
    __table_args__ = (Index("ix_batch_tiers_claim", "status", "lease_expires_at"),)

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True)
    tier_num: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[Status] = mapped_column(StatusType)
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    parent_task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    collection_ids: Mapped[list[Any]] = mapped_column(default=list)
    source_type: Mapped[str] = mapped_column(String(16), default="bucket")
    source_collection_ids: Mapped[list[Any] | None] = mapped_column(default=None)
    manifest_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    counters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    extractor_jobs: Mapped[list[Any]] = mapped_column(default=list)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    error_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    logs: Mapped[list[Any]] = mapped_column(default=list)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Grows by one with each claim; only the holder of the newest token may write (engine/fencing.py).
    fence_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the current round has committed, chunk by chunk, per collection: a take-over resumes from it.
    checkpoint: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_only: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def tier_key(self) -> str:
        """A tier's identity in status events (its task changes with each retry round)."""
        return f"{self.batch_id}/tier_{self.tier_num}"


class DocumentFailure(Base):
    """A source row that failed in a tier: what went wrong, whether a retry may help."""

    __tablename__ = "document_failures"
    __table_args__ = (UniqueConstraint("batch_id", "tier_num", "collection_id", "row_id"),)

    failure_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id", ondelete="CASCADE"), index=True)
    tier_num: Mapped[int] = mapped_column(Integer)
    collection_id: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[str] = mapped_column(String(64))
    root_object_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error_type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    is_transient: Mapped[bool] = mapped_column(Boolean, default=False)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    retry_round: Mapped[int] = mapped_column(Integer, default=0)  # the batch round that last queued it
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------------------------------------
# Collections (issue 4). Their documents live in LanceDB (`strataflow.index`), not here.
# ---------------------------------------------------------------------------------------------


class Collection(Base):
    """A collection: one source (buckets or upstream collections) and exactly one extractor."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("namespace_id", "collection_name"),)

    collection_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
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
    status: Mapped[Status] = mapped_column(StatusType)
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

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy reads it from the class)


# ---------------------------------------------------------------------------------------------
# Retrievers (issue 7): saved search pipelines over collections.
# ---------------------------------------------------------------------------------------------


class Retriever(Base):
    """A saved retriever: its collections, input schema and ordered stages (as echoed to clients)."""

    __tablename__ = "retrievers"
    __table_args__ = (UniqueConstraint("namespace_id", "retriever_name"),)

    retriever_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    retriever_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    collection_ids: Mapped[list[Any]] = mapped_column(default=list)
    stages: Mapped[list[Any]] = mapped_column(default=list)
    input_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    budget_limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    display_config: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The caller's own key-value metadata (null for a retriever made before revision 0017).
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------------------------------------
# Clusters (issue 18): a clustering definition over collections, and its runs.
# ---------------------------------------------------------------------------------------------


class Cluster(Base):
    """A clustering definition: its collections, what it clusters (vectors or attributes) and how.

    `config` holds the normalised definition (feature URIs, algorithm and its parameters, sample
    size, enrichment, labeling); `current_run_id` is the last COMPLETED run, the one groups,
    visualization and enrichment answer from (a failed or canceled run never replaces it).
    """

    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("namespace_id", "cluster_name"),)

    cluster_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    cluster_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    cluster_type: Mapped[str] = mapped_column(String(16))
    collection_ids: Mapped[list[Any]] = mapped_column(default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    filters: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    current_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_executed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ClusterRun(Base):
    """One execution of a cluster: its task, status, timings, metrics and groups.

    Per-document results (assignment, distance, projection) are a Parquet file in blob storage
    (`artifact_key`); groups (`groups`: id, size, keywords, centroid) are small and live here.
    """

    __tablename__ = "cluster_runs"
    __table_args__ = (Index("ix_cluster_runs_cluster_created", "cluster_id", "created_at"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.cluster_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(String(40), index=True)
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[Status] = mapped_column(StatusType)
    mode: Mapped[str] = mapped_column(String(16), default="full")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the definition as executed
    algorithm: Mapped[str | None] = mapped_column(String(32), default=None)
    num_clusters: Mapped[int] = mapped_column(Integer, default=0)
    num_points: Mapped[int] = mapped_column(Integer, default=0)
    source_documents: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    groups: Mapped[list[Any]] = mapped_column(default=list)
    label_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_name: Mapped[str | None] = mapped_column(String(255), default=None)
    artifact_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    enriched: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------------------------------------
# Triggers (issue 18, shared): run something on a schedule. A trigger names its target
# (`target_type`, e.g. "cluster", and its id); what firing does is `runtime.TRIGGER_ACTIONS`.
# ---------------------------------------------------------------------------------------------


class Trigger(Base):
    """An interval or cron schedule that fires an action on a target. `next_run_at` is also the
    claim: a firer advances it with a conditional UPDATE, so two processes never fire one slot."""

    __tablename__ = "triggers"
    __table_args__ = (Index("ix_triggers_due", "status", "next_run_at"),)

    trigger_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(40), index=True)
    trigger_type: Mapped[str] = mapped_column(String(16))
    schedule_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    execution_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused | disabled
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_triggered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    execution_count: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[str | None] = mapped_column(String(32), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Matching events (or documents, for a documents_added threshold) counted since the last
    # firing of an event trigger with a threshold; the claim that fires it resets it.
    pending_events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TriggerFiring(Base):
    """One firing of a trigger: when, the job it started (a task id), or why it started none."""

    __tablename__ = "trigger_firings"

    firing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_id: Mapped[str] = mapped_column(ForeignKey("triggers.trigger_id", ondelete="CASCADE"), index=True)
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(32))  # queued | skipped | failed
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # When the end of its job was announced (trigger.execution.*); None while the job runs.
    settled_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


# ---------------------------------------------------------------------------------------------
# Taxonomies (issue 19): similarity joins from documents to a reference collection's nodes.
# ---------------------------------------------------------------------------------------------


class Taxonomy(Base):
    """A taxonomy: its current version's config; earlier versions are kept in taxonomy_versions."""

    __tablename__ = "taxonomies"
    __table_args__ = (UniqueConstraint("namespace_id", "taxonomy_name"),)

    taxonomy_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    taxonomy_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    nodes: Mapped[list[Any] | None] = mapped_column(default=None)  # path-built hierarchies: prefixes seen
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaxonomyVersion(Base):
    """One version of a taxonomy's config, as it was when that version was made."""

    __tablename__ = "taxonomy_versions"

    taxonomy_id: Mapped[str] = mapped_column(ForeignKey("taxonomies.taxonomy_id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxonomy_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------------------------------------
# Retrieval that learns (issue 22): executions kept, interactions recorded, evaluations run.
# ---------------------------------------------------------------------------------------------


class RetrieverExecution(Base):
    """One finished execution of a retriever (saved or ad hoc): what went in, how each stage did,
    which documents came out (ids and scores, not payloads), and how long it took.

    Recorded once, when the execution ends; older ones are pruned per namespace
    (`Settings.retriever_execution_retention_days`)."""

    __tablename__ = "retriever_executions"
    __table_args__ = (
        Index("ix_retriever_executions_ns_created", "namespace_id", "created_at"),
        Index("ix_retriever_executions_retriever", "retriever_id", "created_at"),
    )

    execution_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"))
    retriever_id: Mapped[str | None] = mapped_column(String(40), default=None)  # None: ad hoc
    status: Mapped[Status] = mapped_column(StatusType)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inputs_hash: Mapped[str] = mapped_column(String(64), default="")
    collection_ids: Mapped[list[Any]] = mapped_column(default=list)
    stages: Mapped[list[Any]] = mapped_column(default=list)  # the pipeline as it ran
    stage_statistics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    results: Mapped[list[Any]] = mapped_column(default=list)  # [{document_id, collection_id, score}] best first
    total_processed: Mapped[int] = mapped_column(Integer, default=0)
    total_returned: Mapped[int] = mapped_column(Integer, default=0)
    stages_completed: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class RetrieverInteraction(Base):
    """A user's signal on one result (click, purchase, dwell, ...) linked to its execution and position."""

    __tablename__ = "retriever_interactions"
    __table_args__ = (
        Index("ix_retriever_interactions_ns_created", "namespace_id", "created_at"),
        Index("ix_retriever_interactions_retriever", "retriever_id", "occurred_at"),
        Index("ix_retriever_interactions_execution", "execution_id"),
    )

    interaction_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"))
    feature_id: Mapped[str] = mapped_column(String(255))
    interaction_type: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", default=None)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    session_id: Mapped[str | None] = mapped_column(String(255), default=None)
    execution_id: Mapped[str | None] = mapped_column(String(40), default=None)
    retriever_id: Mapped[str | None] = mapped_column(String(40), default=None)
    query_snapshot: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    document_score: Mapped[float | None] = mapped_column(default=None)
    result_set_size: Mapped[int | None] = mapped_column(Integer, default=None)
    feature_uri: Mapped[str | None] = mapped_column(String(1024), default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvaluationDataset(Base):
    """Ground truth: queries (retriever inputs) with the documents relevant to each."""

    __tablename__ = "evaluation_datasets"
    __table_args__ = (UniqueConstraint("namespace_id", "dataset_name"),)

    dataset_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    dataset_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    queries: Mapped[list[Any]] = mapped_column(default=list)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RetrieverEvaluation(Base):
    """One evaluation run of a retriever over a dataset: its task, status and metrics."""

    __tablename__ = "retriever_evaluations"
    __table_args__ = (Index("ix_retriever_evaluations_retriever", "retriever_id", "created_at"),)

    evaluation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True)
    retriever_id: Mapped[str] = mapped_column(String(40))
    dataset_id: Mapped[str] = mapped_column(String(40))
    dataset_name: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[Status] = mapped_column(StatusType)
    query_count: Mapped[int] = mapped_column(Integer, default=0)
    overall_metrics: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    metrics_by_k: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    evaluated_queries: Mapped[int] = mapped_column(Integer, default=0)
    skipped_queries: Mapped[int] = mapped_column(Integer, default=0)
    query_results: Mapped[list[Any] | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


# Events (issue 20): webhooks, the outbox of events, and their deliveries.
# ---------------------------------------------------------------------------------------------

# SQLite numbers rows only through an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
_SEQ = BigInteger().with_variant(Integer, "sqlite")


class Webhook(Base):
    """An organisation's subscription to event types, delivered through its channels.

    A channel's signing secret is stored encrypted (`services/events/secrets.py`) and never read back.
    """

    __tablename__ = "webhooks"

    webhook_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"), index=True)
    webhook_name: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    resource_types: Mapped[list[Any] | None] = mapped_column(default=None)
    channels: Mapped[list[Any]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The current run of failed attempts (consecutive_failures, first/last failure, cause) and a pause.
    delivery_health: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxEvent(Base):
    """One event, written in the same transaction as the change it reports (the outbox).

    `seq` orders an organisation's feed (GET /v1/events) and is what a delivery points at.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_seq", "org_id", "seq"), Index("ix_events_created_at", "created_at"))

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    namespace_id: Mapped[str | None] = mapped_column(String(40), default=None)
    event_type: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None)
    operation: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event to one channel of one webhook: claimed under a lease, retried until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_done", "status", "completed_at"),  # the retention sweep
    )

    delivery_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(String(40))
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq", ondelete="CASCADE"), index=True)
    channel_index: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[Status] = mapped_column(StatusType)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    fence_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class DeliveryAttempt(Base):
    """The delivery log: every HTTP attempt, its answer or why it failed, and how long it took."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_webhook", "webhook_id", "attempt_id"),)

    attempt_id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.delivery_id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    fence_token: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class Alert(Base):
    """A saved retriever (or a built-in system condition), a condition on its results, a cooldown,
    and where to notify when it holds. `namespace_id` is None for an organisation-level alert."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name"),  # NULLs are distinct here, so organisation alerts need:
        Index(
            "ux_alerts_org_name",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("namespace_id IS NULL"),
            postgresql_where=text("namespace_id IS NULL"),
        ),
        Index("ix_alerts_org", "org_id"),
    )

    alert_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    namespace_id: Mapped[str | None] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True, default=None
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    source: Mapped[str] = mapped_column(String(16), default="retriever", server_default="retriever")
    retriever_id: Mapped[str | None] = mapped_column(String(40), default=None)
    system_condition: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # {type, params}
    namespace_selector: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # {mode, namespace_ids}
    condition: Mapped[dict[str, Any]] = mapped_column(default=dict)  # trigger_on, min_count, threshold
    inputs: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=0)
    renotify_interval_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    notification_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", default=None)
    last_fired_at: Mapped[datetime | None] = mapped_column(default=None)
    # Whether this rise of the condition (it held at every evaluation since) was notified: a
    # notification goes out once per rise, and with renotify_interval_seconds again while it holds.
    rise_notified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # System alerts are checked by the alert sweep when this is due; the sweep claims the check by
    # moving it forward with a conditional UPDATE (like a trigger's next_run_at).
    next_check_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertIngestClaim(Base):
    """An alert to evaluate because a collection applying it on ingest wrote documents.

    PENDING until the alert sweep claims it under a lease (PROCESSING, transitions.ALERT_INGEST);
    the execution it records and its COMPLETED are one transaction, fenced by the claim's token, so
    an evaluator that dies mid-way leaves a lease that expires and the evaluation is made again
    (at least once). Markings that arrive while it is PROCESSING wait in `later_documents` and
    `remarked`, and put it back to PENDING when the running evaluation completes.
    """

    __tablename__ = "alert_ingest_claims"
    __table_args__ = (Index("ix_alert_ingest_due", "status", "lease_expires_at"),)

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[Status] = mapped_column(StatusType)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    documents: Mapped[list[Any]] = mapped_column(default=list)
    remarked: Mapped[bool] = mapped_column(Boolean, default=False)
    later_documents: Mapped[list[Any]] = mapped_column(default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    fence_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertExecution(Base):
    """One evaluation of an alert: how it was started, what matched, whether it fired, what was sent."""

    __tablename__ = "alert_executions"
    __table_args__ = (Index("ix_alert_executions_alert", "alert_id", "executed_at"),)

    execution_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    namespace_id: Mapped[str] = mapped_column(String(40), index=True)
    collection_id: Mapped[str] = mapped_column(String(40), default="")
    mode: Mapped[str] = mapped_column(String(16))  # on_demand | on_ingest | scheduled
    triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)  # the condition held inside the cooldown
    match_count: Mapped[int] = mapped_column(Integer, default=0)
    matches: Mapped[list[Any]] = mapped_column(default=list)
    source_documents: Mapped[list[Any] | None] = mapped_column(default=None)
    deliveries: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    executed_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
