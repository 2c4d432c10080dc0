"""Request shapes of retrievers: create, patch, list, execute (saved and ad hoc)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field

from strataflow.schemas.common import RequestModel, SortOption

InputType = Literal[
    "string",
    "number",
    "integer",
    "float",
    "boolean",
    "object",
    "array",
    "date",
    "datetime",
    "text",
    "image",
    "audio",
    "video",
    "pdf",
    "excel",
    "document_reference",
]


class InputField(RequestModel):
    """One named input of a retriever (RetrieverInputSchemaField)."""

    type: InputType
    default: Any = None
    items: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    examples: list[Any] | None = None
    description: str | None = None
    enum: list[Any] | None = None
    required: bool = False


class BudgetLimits(RequestModel):
    max_credits: float | None = Field(default=None, ge=0)
    max_time_ms: int | None = Field(default=None, ge=1)


class CreateRetrieverRequest(RequestModel):
    retriever_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    collection_identifiers: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("collection_identifiers", "collection_ids")
    )
    stages: list[dict[str, Any]] = Field(min_length=1)
    input_schema: dict[str, InputField] = Field(default_factory=dict)
    budget_limits: BudgetLimits | None = None
    tags: list[str] = Field(default_factory=list)
    display_config: dict[str, Any] | None = None
    # Stored and returned as given. The hosted marketplace's visibility, marketplace_listing_id and
    # requires_subscription are not declared: there is no marketplace here (ignored, they change nothing).
    metadata: dict[str, Any] = Field(default_factory=dict)


class PatchRetrieverRequest(RequestModel):
    retriever_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    tags: list[str] | None = None
    display_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None  # replaces the stored metadata whole
    # The pipeline itself: stages replaced whole, collections re-pointed (both checked as on
    # create), and the input schema evolved without breaking its callers.
    stages: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    collection_identifiers: list[str] | None = Field(
        default=None, min_length=1, validation_alias=AliasChoices("collection_identifiers", "collection_ids")
    )
    input_schema: dict[str, InputField] | None = None


class ListRetrieversRequest(RequestModel):
    search: str | None = None
    filters: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    sort: SortOption | None = None  # the SDK's single sort; where `sorts` comes too, it follows them
    case_sensitive: bool = False


class ReadConsistency(RequestModel):
    mode: Literal["strong", "eventual"]
    max_staleness_ms: int | None = Field(default=None, ge=0)


class ExecuteRetrieverRequest(RequestModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    # This execution's own filters (the documents filter language), ANDed into every search's.
    filters: dict[str, Any] | None = None
    pagination: dict[str, Any] | None = None
    stream: bool = False
    # Sent by newer SDKs in the body; the query parameters of the same names work too.
    limit: int | None = Field(default=None, ge=1, le=500)
    offset: int | None = Field(default=None, ge=0)
    return_vectors: bool = False
    return_presigned_urls: bool = False
    explain: bool = False  # the result then carries explain_plan: this run's per-stage profile
    expand: list[str] | None = None  # references resolved under each result's _expanded
    target_collection_id: str | None = None  # write the returned documents into this collection
    # Read consistency: one store, so every read is strong; 'eventual' is served strongly too (it
    # only allows lag), and a write_token has nothing to wait for. There is no result cache to skip.
    consistency: ReadConsistency | None = None
    write_token: str | None = Field(default=None, max_length=512)
    skip_cache: bool = False


class AdhocExecuteRequest(ExecuteRetrieverRequest):
    collection_identifiers: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("collection_identifiers", "collection_ids")
    )
    input_schema: dict[str, InputField]
    stages: list[dict[str, Any]] = Field(min_length=1)
    budget_limits: BudgetLimits | None = None


MAX_BATCH_QUERIES = 100


class BatchQuery(RequestModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    filters: dict[str, Any] | None = None


class ExecuteBatchRequest(RequestModel):
    queries: list[BatchQuery] = Field(min_length=1, max_length=MAX_BATCH_QUERIES)
    settings: dict[str, Any] | None = None
    concurrency: int = Field(default=5, ge=1, le=20)
    return_presigned_urls: bool = False
    return_vectors: bool = False
    stream: bool = False
    limit: int | None = Field(default=None, ge=1, le=500)


class CloneRetrieverRequest(RequestModel):
    retriever_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    collection_identifiers: list[str] | None = None
    stages: list[dict[str, Any]] | None = None
    input_schema: dict[str, InputField] | None = None
    budget_limits: BudgetLimits | None = None
    tags: list[str] | None = None
    display_config: dict[str, Any] | None = None


class ExplainRetrieverRequest(RequestModel):
    inputs: dict[str, Any] | None = None


class ListExecutionsRequest(RequestModel):
    filters: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    status: str | None = None


class ListAdhocExecutionsRequest(RequestModel):
    status: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    count_only: bool = False
