"""Batch wire models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from strataflow.schemas.common import RequestModel, ResponseModel
from strataflow.statuses import Status

# One request may carry many ids (100,000 is a supported size), each an object id.
ObjectIds = list[str]


# The most objects a filter may resolve to (the contract's bound on one filter-created batch).
MAX_FILTERED_OBJECTS = 50_000
DedupStrategy = Literal["skip", "replace", "force"]


class CreateBatchRequest(RequestModel):
    """Either `object_ids` or `filters` (optionally capped by `limit`) picks the objects."""

    object_ids: ObjectIds | None = Field(default=None, min_length=1, max_length=1_000_000)
    filters: dict[str, Any] | None = None
    limit: int | None = Field(default=None, ge=1, le=MAX_FILTERED_OBJECTS)
    # The SDK documents `collections` as a shorthand spelling of the same field.
    collection_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=100, validation_alias=AliasChoices("collection_ids", "collections")
    )
    dedup_strategy: DedupStrategy | None = None
    batch_name: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Submit at once, as the ?auto_submit query parameter does (which wins when both are given);
    # trigger_processing is the SDK's deprecated spelling of the same.
    auto_submit: bool | None = None
    trigger_processing: bool | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> CreateBatchRequest:
        if (self.object_ids is None) == (self.filters is None):
            raise ValueError("give exactly one of object_ids and filters")
        if self.limit is not None and self.filters is None:
            raise ValueError("limit caps what filters resolve to; it needs filters")
        return self

    def submits(self, query: bool | None) -> bool:
        for choice in (query, self.auto_submit, self.trigger_processing):
            if choice is not None:
                return choice
        return False


class AddObjectsToBatchRequest(RequestModel):
    object_ids: ObjectIds = Field(min_length=1, max_length=1_000_000)


class SubmitBatchRequest(RequestModel):
    include_processing_history: bool = True
    # Deprecated: the scope is set at creation; given here, it must name the batch's first tier.
    collection_ids: list[str] | None = None
    webhook_url: str | None = Field(default=None, max_length=2048)


class PatchBatchRequest(RequestModel):
    metadata: dict[str, Any] | None = None


class ListBatchesRequest(RequestModel):
    """A bucket's batches, filtered. `namespace_id` (id or name) must name the X-Namespace namespace (else a 400);
    `bucket_id` (id or name) naming another bucket than the path's matches nothing; `collection_id` keeps the
    batches one of whose planned tiers runs that collection; `cursor` is a previous page's `next_cursor`."""

    status: Status | None = None
    collection_id: str | None = None
    bucket_id: str | None = None  # id or name
    namespace_id: str | None = None  # id or name; must agree with X-Namespace
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=512)


class ListAllBatchesRequest(ListBatchesRequest):
    """Batches across buckets. `sort_by` / `sort_direction` go beyond the contract (newest first by default)."""

    sort_by: Literal["created_at", "updated_at", "status", "object_count"] = "created_at"
    sort_direction: Literal["asc", "desc"] = "desc"


class BulkSubmitRequest(RequestModel):
    collection_ids: list[str] | None = Field(default=None, max_length=100)
    filters: dict[str, Any] | None = None
    chunk_size: int = Field(default=1000, ge=1, le=50_000)
    dedup_strategy: Literal["skip", "replace", "force"] | None = None
    max_objects: int | None = Field(default=None, ge=1)


class RetryBatchRequest(RequestModel):
    retry_mode: Literal["transient_only", "all"] = "transient_only"
    tier_nums: list[int] | None = None
    max_retry_count: int = Field(default=3, ge=1, le=10)


# What a tier heal can do: `sync_status` redoes what the tier should have written (and removes
# documents whose source is gone); the other two report (see engine/lifecycle/heal.py).
HEAL_ACTIONS = ("sync_status", "detect_stuck", "kill_duplicates")


class HealTierRequest(RequestModel):
    action: str = Field(description="One of " + ", ".join(HEAL_ACTIONS))
    dry_run: bool = False  # sync_status: report what would be healed, change nothing


class TierTaskInfo(ResponseModel):
    tier_num: int = Field(ge=0)
    task_id: str | None = None
    status: Status = Status.PENDING
    collection_ids: list[str] = Field(default_factory=list)
    extractor_jobs: list[dict[str, Any]] = Field(default_factory=list)
    source_type: str
    source_collection_ids: list[str] | None = None
    parent_task_id: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: float | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)
    error_summary: dict[str, int] | None = None
    performance: dict[str, Any] | None = None
    ray_job_id: str | None = None
    celery_task_id: str | None = None
    source_documents_fetched: int | None = None
    documents_after_source_filter: int | None = None
    documents_missing_input_fields: int | None = None
    documents_submitted_to_engine: int | None = None
    documents_written: int | None = None


class BatchModel(ResponseModel):
    batch_id: str
    bucket_id: str
    namespace_id: str | None = None
    batch_name: str | None = None
    status: Status = Status.DRAFT
    object_ids: list[str] = Field(default_factory=list)
    dedup_strategy: DedupStrategy | None = None
    dedup_audit: dict[str, Any] | None = None
    documents_replaced: int | None = None
    collection_ids: list[str] | None = None
    error: str | None = None
    error_summary: dict[str, int] | None = None
    type: str = "BUCKET"
    manifest_key: str | None = None
    task_id: str | None = None
    loaded_object_ids: list[str] | None = None
    internal_metadata: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tier_tasks: list[TierTaskInfo] = Field(default_factory=list)
    current_tier: int | None = None
    total_tiers: int = Field(default=1, ge=1)
    dag_tiers: list[list[str]] | None = None
    webhook_url: str | None = None
    max_node_death_resubmits: int = 3
    max_deploy_resubmits: int = 3
    created_at: str | None = None
    updated_at: str | None = None


class ListBatchesResponse(ResponseModel):
    results: list[BatchModel]
    total_count: int
    pagination: dict[str, Any] | None = None
