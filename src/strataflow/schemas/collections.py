"""Collection wire models."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from strataflow.schemas.common import BodyPaging, PaginationResponse, RequestModel, ResponseModel, SortOption

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"


class SourceConfig(RequestModel):
    type: Literal["bucket", "collection", "taxonomy", "cluster"]
    bucket_ids: list[str] | None = Field(default=None, min_length=1)
    bucket_id: str | None = Field(default=None, description="Older single-bucket spelling; same as bucket_ids=[id].")
    collection_id: str | None = None
    collection_ids: list[str] | None = Field(default=None, min_length=1)
    inherited_bucket_ids: list[str] | None = None
    source_filters: dict[str, Any] | None = None
    source_namespace_id: str | None = None


class InputMapping(RequestModel):
    input_key: str = Field(min_length=1)
    source_type: Literal["payload", "literal", "vector"] | None = "payload"
    path: str | None = None
    override: Any = None


class FieldPassthrough(RequestModel):
    source_path: str = Field(min_length=1, max_length=500)
    target_path: str | None = Field(default=None, min_length=1, max_length=100)
    default: Any = None
    required: bool = False


class FeatureExtractorConfig(RequestModel):
    feature_extractor_name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    params: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    input_mappings: dict[str, Any] | list[InputMapping] = Field(default_factory=dict)
    field_passthrough: list[FieldPassthrough] = Field(default_factory=list)
    include_all_source_fields: bool = False


class CreateCollectionRequest(RequestModel):
    collection_name: str = Field(min_length=3, max_length=100, pattern=COLLECTION_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    source: SourceConfig
    input_schema: dict[str, Any] | None = None
    feature_extractor: FeatureExtractorConfig
    enabled: bool = True
    metadata: dict[str, Any] | None = None
    taxonomy_applications: list[dict[str, Any]] | None = None
    cluster_applications: list[dict[str, Any]] | None = None
    alert_applications: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_extractor(cls, data: Any) -> Any:
        # Older clients send a one-element `feature_extractors` list; a collection has exactly one.
        if isinstance(data, dict) and "feature_extractor" not in data and "feature_extractors" in data:
            extractors = data["feature_extractors"]
            if not isinstance(extractors, list) or len(extractors) != 1:
                raise ValueError("a collection has exactly one feature extractor")
            data = {**data, "feature_extractor": extractors[0]}
        return data


class PatchCollectionRequest(RequestModel):
    collection_name: str | None = Field(default=None, min_length=3, max_length=100, pattern=COLLECTION_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    taxonomy_applications: list[dict[str, Any]] | None = None
    cluster_applications: list[dict[str, Any]] | None = None
    alert_applications: list[dict[str, Any]] | None = None


class CloneCollectionRequest(RequestModel):
    """A new collection from an existing one: each field given replaces the source's, the rest is copied."""

    # The full name rule (length, pattern, uniqueness) is CreateCollectionRequest's: the clone is created by it.
    collection_name: str = Field(min_length=1)
    description: str | None = None
    source: SourceConfig | None = None
    feature_extractor: FeatureExtractorConfig | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    taxonomy_applications: list[dict[str, Any]] | None = None


class ListCollectionsRequest(BodyPaging):
    """`sorts` ({field, direction} entries, the first primary) come before the legacy single `sort`.
    `include_system` asks for the namespace's system collections too (Mixpeek's `_direct_upsert`);
    Strataflow has none, so it changes nothing."""

    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    sorts: list[dict[str, Any]] | None = None
    search: str | None = None
    case_sensitive: bool = False
    include_system: bool = False


class CollectionResponse(ResponseModel):
    collection_id: str
    collection_name: str
    description: str | None = None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    feature_extractor: dict[str, Any]
    source: dict[str, Any]
    vector_indexes: list[dict[str, Any]] = Field(default_factory=list)
    enabled: bool = True
    document_count: int | None = None


class ListCollectionsResponse(ResponseModel):
    results: list[CollectionResponse]
    pagination: PaginationResponse
    total_count: int
    stats: dict[str, Any] | None = None


class CloneCollectionResponse(ResponseModel):
    collection: CollectionResponse
    source_collection_id: str


class ReconciliationDiscrepancy(ResponseModel):
    object_id: str
    bucket_id: str | None = None
    reason: Literal["no_document", "failed", "processing", "skipped", "unknown"]
    status: str | None = None
    age_seconds: float | None = None
    error: str | None = None


class CollectionReconciliationResponse(ResponseModel):
    collection_id: str
    source_object_count: int
    produced_object_count: int
    document_count: int
    delta: int
    discrepancies: list[ReconciliationDiscrepancy] = Field(default_factory=list)
    discrepancies_truncated: bool = False
    limit: int


class CollectionFeature(ResponseModel):
    feature_address: str
    feature_uri: str
    feature_extractor_name: str
    version: str
    vector_index: dict[str, Any]
    primary: bool = False


class DescribeCollectionFeaturesResponse(ResponseModel):
    features: list[CollectionFeature]


class TriggerCollectionRequest(RequestModel):
    include_buckets: list[str] | None = None
    include_collections: list[str] | None = None
    # The filter tree bare (the SDK's LogicalOperator), or under `filters` as in a collection's source.
    source_filters: dict[str, Any] | None = None
    # At most as many as one IN list can bind on SQLite (its limit is 32,766 variables).
    object_ids: list[str] | None = Field(default=None, max_length=10_000)
    # As on batch create; none (the default here) reprocesses every matching object.
    dedup_strategy: Literal["skip", "replace", "force"] | None = None
    # Declared so that asking for them is refused with a reason, never silently dropped.
    reembed: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_reembed(self) -> Self:
        if self.reembed is not None:
            raise ValueError(
                "reembed (re-embedding the text documents already store) is not supported: "
                "trigger without it to reprocess the sources"
            )
        return self


class TriggerCollectionResponse(ResponseModel):
    batch_id: str
    task_id: str
    collection_id: str
    source_bucket_ids: list[str] | None = None
    source_collection_ids: list[str] | None = None
    object_count: int | None = None
    document_count: int | None = None
    total_tiers: int
    message: str


class ExportDestination(RequestModel):
    connection_id: str
    prefix: str = ""


class CollectionExportRequest(RequestModel):
    """The SDK's CollectionExportRequest. `webdataset` and `destination` are part of the contract
    but refused by the service (a 400 naming them), never ignored."""

    format: Literal["parquet", "json", "csv", "webdataset"] | None = None  # None: parquet
    include_vectors: bool = False
    include_lineage: bool = False
    select_fields: list[str] | None = Field(default=None, max_length=1000)
    filters: dict[str, Any] | None = None
    sample_size: int | None = Field(default=None, ge=1, le=1_000_000)
    include_media: bool = False
    samples_per_shard: int = Field(default=1000, ge=1, le=100_000)
    destination: ExportDestination | None = None


class CollectionExportResponse(ResponseModel):
    download_url: str
    s3_path: str
    format: str
    document_count: int
    file_size_bytes: int
    exported_at: str
    vectors_download_url: str | None = None
    vectors_s3_path: str | None = None
    shard_count: int | None = None  # webdataset only, as the four below
    shard_pattern: str | None = None
    shards: list[ExportShard] | None = None
    media: ExportMediaSummary | None = None


class ExportShard(ResponseModel):
    filename: str
    s3_path: str
    download_url: str
    sample_count: int
    file_size_bytes: int


class ExportMediaSummary(ResponseModel):
    samples_with_media: int
    samples_without_media: int
    members_written: int
    members_skipped_too_large: int
    objects_not_found: int
    download_failures: int
    media_bytes: int
