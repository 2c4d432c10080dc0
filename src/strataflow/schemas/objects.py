"""Bucket object wire models."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from strataflow.schemas.aggregation import AggregationRequest, GroupByField
from strataflow.schemas.common import PaginationResponse, RequestModel, ResponseModel, SortOption
from strataflow.statuses import Status


class CreateBlobRequest(RequestModel):
    property: str = Field(min_length=1, max_length=100)
    key_prefix: str | None = Field(default=None, max_length=1024)
    type: str = Field(min_length=1)
    data: Any = None
    upload_id: str | None = Field(default=None, pattern=r"^upl_[a-zA-Z0-9_-]+$")
    metadata: dict[str, Any] | None = None
    filename: str | None = Field(default=None, max_length=255)
    content_type: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _data_or_upload(self) -> CreateBlobRequest:
        if self.data is not None and self.upload_id is not None:
            raise ValueError("a blob takes either 'data' or 'upload_id', not both")
        if self.data is None and self.upload_id is None:
            raise ValueError("a blob needs 'data' or 'upload_id'")
        return self


class CreateObjectRequest(RequestModel):
    """Extra top-level keys are allowed by the contract; `metadata` is the one we keep."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    key_prefix: str | None = Field(default=None, max_length=1024)
    blobs: list[CreateBlobRequest] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    skip_duplicates: bool = False
    canonicalize_source: bool = True
    force_remirror: bool = False


class CreateObjectsBatchRequest(RequestModel):
    objects: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class UpdateObjectRequest(RequestModel):
    key_prefix: str | None = Field(default=None, max_length=1024)
    blobs: list[CreateBlobRequest] | None = None
    metadata: dict[str, Any] | None = None
    skip_duplicates: bool | None = None


class PatchObjectRequest(RequestModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    key_prefix: str | None = Field(default=None, max_length=1024)
    metadata: dict[str, Any] | None = None


class ListObjectsRequest(RequestModel):
    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    search: str | None = None
    select: list[str] | None = None
    return_presigned_urls: bool = False  # each stored blob gets a fresh download URL (1 hour)


class ObjectAggregationRequest(AggregationRequest):
    group_by: list[GroupByField] = Field(min_length=1, max_length=8)


class BlobDetails(ResponseModel):
    filename: str | None = None
    size_bytes: int | None = None
    mime_type: str | None = None
    hash: str | None = None


class BlobModel(ResponseModel):
    blob_id: str
    property: str
    key_prefix: str | None = None
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)
    details: BlobDetails = Field(default_factory=BlobDetails)


class SourceDetails(ResponseModel):
    type: str
    source_id: str


class ObjectResponse(ResponseModel):
    object_id: str
    bucket_id: str
    key_prefix: str | None = None
    blobs: list[BlobModel] = Field(default_factory=list)
    source_details: list[SourceDetails] = Field(default_factory=list)
    status: Status = Status.DRAFT
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


class ListObjectsResponse(ResponseModel):
    results: list[dict[str, Any]]
    pagination: PaginationResponse
    stats: dict[str, Any] | None = None


class FailedObject(ResponseModel):
    object_index: int
    error: str
    error_type: str


class CreateObjectsBatchResponse(ResponseModel):
    succeeded: list[ObjectResponse]
    failed: list[FailedObject]
    total_requested: int
    succeeded_count: int
    failed_count: int


class ObjectAggregationResponse(ResponseModel):
    results: list[dict[str, Any]]
    total_groups: int
    query_info: dict[str, Any] = Field(default_factory=dict)
