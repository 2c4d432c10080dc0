"""Collection document and lineage wire models."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from strataflow.schemas.aggregation import AggregationRequest
from strataflow.schemas.common import (
    BodyPaging,
    PaginationResponse,
    RequestModel,
    ResponseModel,
    SortOption,
)

MAX_PARTITIONS = 256


class Partition(RequestModel):
    index: int = Field(ge=0, description="This reader's partition, from 0 to count - 1.")
    count: int = Field(ge=1, le=MAX_PARTITIONS, description="How many partitions the documents are split into.")

    @model_validator(mode="after")
    def _index_below_count(self) -> Partition:
        if self.index >= self.count:
            raise ValueError(f"partition index {self.index} must be below count {self.count}")
        return self


class ListDocumentsRequest(BodyPaging):
    """Paging (`limit`/`page_size`, `offset`/`page`) may come in the body, as the SDK sends it, or the query."""

    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    search: str | None = None
    cursor: str | None = Field(default=None, max_length=512)
    return_url: bool | None = None
    return_presigned_urls: bool | None = None
    return_vectors: bool | None = None
    return_vector_names: bool | list[str] | None = None
    partition: Partition | None = None
    group_by: str | None = None
    select: list[str] | None = None
    expand: list[str] | None = None
    include_total: bool | None = None

    @field_validator("group_by", mode="before")
    @classmethod
    def _group_by_field(cls, value: Any) -> Any:
        """The SDK documents an object form too: {"field": "metadata.category"}."""
        return value.get("field") if isinstance(value, dict) else value


class NamespaceListDocumentsRequest(ListDocumentsRequest):
    """The namespace-wide list (`POST /v1/documents/list`): a collection list's body, narrowed to
    some collections (ids or names, also spelled `collection_id` or `collections`)."""

    collection_ids: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("collection_ids", "collection_id", "collections")
    )

    @field_validator("collection_ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class BatchGetDocumentsRequest(RequestModel):
    document_ids: list[str] = Field(min_length=1, max_length=1000)
    return_presigned_urls: bool = True  # the contract's default on this route, unlike the others


class BatchListQuery(RequestModel):
    key: str = Field(min_length=1, max_length=128)
    request: NamespaceListDocumentsRequest


class BatchListDocumentsRequest(RequestModel):
    queries: list[BatchListQuery] = Field(min_length=1, max_length=10)


class FeatureModel(RequestModel):
    feature_extractor_id: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    vectors: Any = None


class DocumentCreateRequest(RequestModel):
    """Extra top-level keys become document fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    collection_id: str | None = None
    root_object_id: str | None = None
    root_bucket_id: str | None = None
    source_type: str | None = Field(default=None, pattern="^(bucket|collection|taxonomy)$")
    source_collection_id: str | None = None
    source_document_id: str | None = None
    source_object_id: str | None = None
    lineage_path: str | None = None
    lineage_chain: list[dict[str, Any]] = Field(default_factory=list)
    document_schema_version: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    features: list[FeatureModel] = Field(default_factory=list)


class BulkUpdateDocumentsRequest(RequestModel):
    filters: dict[str, Any] | None = None
    update_data: dict[str, Any]


class BatchDocumentUpdate(RequestModel):
    document_id: str = Field(min_length=1)
    update_data: dict[str, Any]


class BatchUpdateDocumentsRequest(RequestModel):
    updates: list[BatchDocumentUpdate] | None = Field(default=None, max_length=1000)
    filters: dict[str, Any] | None = None
    update_data: dict[str, Any] | None = None


class BatchDeleteDocumentsRequest(RequestModel):
    document_ids: list[str] | None = Field(default=None, max_length=10000)
    filters: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=500)  # carried in the documents.deleted.batch event


class DocumentAggregationRequest(AggregationRequest):
    """Without group_by, one row over every matching document (a count, a sum)."""


class DocumentResponse(ResponseModel):
    document_id: str
    collection_id: str


class ListDocumentsResponse(ResponseModel):
    results: list[dict[str, Any]] | None = None
    groups: list[dict[str, Any]] | None = None
    pagination: PaginationResponse
    stats: dict[str, Any] | None = None
    group_by_field: str | None = None
    total_documents: int | None = None


class BatchGetDocumentsResponse(ResponseModel):
    documents: list[dict[str, Any]]
    not_found: list[str]


class BatchListResult(ResponseModel):
    key: str
    response: ListDocumentsResponse | None = None
    error: str | None = None


class BatchListDocumentsResponse(ResponseModel):
    results: list[BatchListResult]


class BulkUpdateDocumentsResponse(ResponseModel):
    updated_count: int
    message: str = "Documents updated successfully"


class DocumentResult(ResponseModel):
    document_id: str
    success: bool
    error: str | None = None


class BatchUpdateDocumentsResponse(ResponseModel):
    updated_count: int
    failed_count: int = 0
    results: list[DocumentResult] = Field(default_factory=list)
    message: str = "Batch update completed"


class BatchDeleteDocumentsResponse(ResponseModel):
    deleted_count: int
    failed_count: int = 0
    results: list[DocumentResult] = Field(default_factory=list)
    message: str = "Batch delete completed"


class DocumentAggregationResponse(ResponseModel):
    results: list[dict[str, Any]]
    total_groups: int
    query_info: dict[str, Any] = Field(default_factory=dict)


class DocumentLineageResponse(ResponseModel):
    document_id: str
    collection_id: str
    lineage: dict[str, Any] | None = None
    depth: int = 0
    total_steps: int = 0
    message: str | None = None


class DocumentCountResponse(ResponseModel):
    collection_id: str
    count: int


class DistinctValuesRequest(RequestModel):
    field: str = Field(min_length=1)
    filters: dict[str, Any] | None = None
    limit: int | None = Field(default=None, ge=1, le=10000)


class DistinctValue(ResponseModel):
    value: Any
    count: int


class DistinctValuesResponse(ResponseModel):
    field: str
    values: list[DistinctValue]
    total_distinct: int
    query_info: dict[str, Any] | None = None


class SceneDownloadResponse(ResponseModel):
    download_url: str
    cached: bool
    start_time: float
    end_time: float


class VisibilityReason(ResponseModel):
    searchable: bool | None = None
    reason: str
    source_object_id: str | None = None


class RecentFailures(ResponseModel):
    failures: list[dict[str, Any]] | None = None
    reason: str | None = None


class DiagnosticHistory(ResponseModel):
    entries: list[dict[str, Any]] | None = None
    reason: str | None = None


class DocumentDiagnosticsResponse(ResponseModel):
    document_id: str
    collection_id: str
    source_object_id: str | None = None
    visibility_reason: VisibilityReason
    recent_failures: RecentFailures
    diagnostic_history: DiagnosticHistory
