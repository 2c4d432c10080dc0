"""Presigned upload wire models (the contract's, plus our multipart extension)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import PaginationResponse, RequestModel, ResponseModel, SortOption
from strataflow.schemas.tasks import TaskResponse
from strataflow.statuses import Status

SHA256_HEX = r"^[a-f0-9]{64}$"
BATCH_CONFIRM_MESSAGE = "Batch confirmation is being processed in the background."


class CreateUploadRequest(RequestModel):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=255)
    file_size_bytes: int | None = Field(default=None, ge=1)
    presigned_url_expiration: int = Field(default=3600, ge=60, le=86400)
    metadata: dict[str, Any] = Field(default_factory=dict)
    create_object_on_confirm: bool = True
    object_metadata: dict[str, Any] | None = None
    blob_property: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_]+$", max_length=100)
    blob_type: str | None = None
    file_hash: str | None = Field(default=None, min_length=64, max_length=64, pattern=SHA256_HEX)
    skip_duplicates: bool = True


class UploadResponse(ResponseModel):
    upload_id: str
    bucket_id: str
    filename: str
    content_type: str
    file_size_bytes: int | None = None
    presigned_url: str | None = None
    presigned_url_expiration: int
    s3_key: str
    status: Status
    metadata: dict[str, Any] = Field(default_factory=dict)
    create_object_on_confirm: bool
    object_metadata: dict[str, Any] | None = None
    blob_property: str | None = None
    blob_type: str | None = None
    file_hash: str | None = None
    skip_duplicates: bool = True
    is_duplicate: bool = False
    duplicate_of_upload_id: str | None = None
    skipped_unique_key: bool = False
    existing_object_id: str | None = None
    message: str | None = None
    created_at: str
    expires_at: str
    completed_at: str | None = None
    verified_at: str | None = None
    etag: str | None = None
    object_id: str | None = None
    task_id: str | None = None


class PartRef(RequestModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class ConfirmUploadRequest(RequestModel):
    etag: str | None = None
    file_size_bytes: int | None = Field(default=None, ge=1)
    # Beyond the contract: for a multipart upload, the parts the client sent and
    # the ETags it got back; when given, each must match what storage holds.
    parts: list[PartRef] | None = Field(default=None, max_length=10_000)
    # Create and submit a batch of the new object (once per upload); see docs/uploads.md.
    auto_submit_batch: bool = False


class ConfirmUploadResponse(ResponseModel):
    upload_id: str
    status: Status
    etag: str | None = None
    file_size_bytes: int | None = None
    file_hash: str | None = None
    verified_at: str | None = None
    completed_at: str | None = None
    object_id: str | None = None
    task_id: str | None = None
    batch_id: str | None = None  # made by auto_submit_batch
    message: str | None = None


class BatchUploadRequest(RequestModel):
    uploads: list[CreateUploadRequest] = Field(min_length=1, max_length=100)
    shared_metadata: dict[str, Any] | None = None
    shared_object_metadata: dict[str, Any] | None = None


class BatchUploadResponse(ResponseModel):
    uploads: list[UploadResponse]
    total: int


class BatchConfirmRequest(RequestModel):
    confirmations: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class BatchConfirmResponse(ResponseModel):
    task_id: str
    status: Status
    confirmations_count: int
    task: TaskResponse
    message: str = BATCH_CONFIRM_MESSAGE


class ListUploadsRequest(RequestModel):
    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    search: str | None = None
    return_presigned_urls: bool = False
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)


class UploadListStats(ResponseModel):
    total_uploads: int
    total_size_bytes: int
    uploads_by_status: dict[str, int]
    avg_file_size_bytes: float
    unique_buckets: int


class ListUploadsResponse(ResponseModel):
    results: list[UploadResponse]
    pagination: PaginationResponse
    stats: UploadListStats


class OpenMultipartRequest(RequestModel):
    """Beyond the contract: cut a large upload into parts, each with its own presigned URL."""

    file_size_bytes: int | None = Field(default=None, ge=1)
    part_size_bytes: int | None = Field(default=None, ge=1)


class MultipartPart(ResponseModel):
    part_number: int
    size_bytes: int
    presigned_url: str | None = None
    uploaded: bool = False
    etag: str | None = None


class MultipartResponse(ResponseModel):
    upload_id: str
    multipart_upload_id: str
    file_size_bytes: int
    part_size_bytes: int
    part_count: int
    parts_uploaded: int
    expires_at: str
    parts: list[MultipartPart]
