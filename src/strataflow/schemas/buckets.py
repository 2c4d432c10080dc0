"""Bucket wire models."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import BodyPaging, PaginationResponse, RequestModel, ResponseModel
from strataflow.statuses import Status


class BucketCreateRequest(RequestModel):
    bucket_name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    bucket_schema: dict[str, Any]
    unique_key: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class BucketUpdateRequest(RequestModel):
    bucket_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, Any] | None = None


class ListBucketsRequest(BodyPaging):
    """`sorts` ({field, direction} entries, the first primary) come before the legacy single `sort`."""

    search: str | None = None
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    case_sensitive: bool = False


class BucketResponse(ResponseModel):
    bucket_id: str
    bucket_name: str
    description: str | None = None
    bucket_schema: dict[str, Any] | None = None
    unique_key: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    object_count: int
    total_size_bytes: int
    created_at: str | None = None
    updated_at: str | None = None
    last_upload_at: str | None = None
    status: Status = Status.ACTIVE
    is_locked: bool = False
    batch_stats: dict[str, Any] | None = None
    storage_stats: dict[str, Any] | None = None


class ListBucketsResponse(ResponseModel):
    results: list[BucketResponse]
    total_count: int
    pagination: PaginationResponse
    stats: dict[str, Any] | None = None
