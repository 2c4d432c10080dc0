"""Namespace wire models."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import BodyPaging, PaginationResponse, RequestModel, ResponseModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"


class FeatureExtractorRef(RequestModel):
    feature_extractor_name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] | None = None


class CreateNamespaceRequest(RequestModel):
    namespace_name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    feature_extractors: list[FeatureExtractorRef] = Field(default_factory=list)
    payload_indexes: list[dict[str, Any]] | None = None
    auto_create_indexes: bool | None = False
    infrastructure: dict[str, Any] | None = None


class UpdateNamespaceRequest(RequestModel):
    namespace_name: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    payload_indexes: list[dict[str, Any]] | None = None


class PatchNamespaceRequest(UpdateNamespaceRequest):
    description: str | None = Field(default=None, max_length=2000)
    auto_create_indexes: bool | None = None
    infrastructure: dict[str, Any] | None = None


class ListNamespacesRequest(BodyPaging):
    """`sorts` ({field, direction} entries, the first primary) come before the legacy single `sort`."""

    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    search: str | None = None
    case_sensitive: bool = False


class FeatureExtractorOut(ResponseModel):
    feature_extractor_name: str
    version: str
    feature_extractor_id: str
    params: dict[str, Any] | None = None


class NamespaceModel(ResponseModel):
    namespace_id: str
    namespace_name: str
    description: str | None = None
    infrastructure: dict[str, Any] | None = None
    feature_extractors: list[FeatureExtractorOut] = Field(default_factory=list)
    payload_indexes: list[dict[str, Any]] | None = None
    document_count: int | None = None
    bucket_count: int | None = None
    collection_count: int | None = None
    object_count: int | None = None
    auto_create_indexes: bool = False
    created_at: str | None = None
    updated_at: str | None = None


class ListNamespacesResponse(ResponseModel):
    results: list[NamespaceModel]
    pagination: PaginationResponse
    total_count: int
