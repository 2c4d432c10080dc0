"""The feature extractor catalogue: public globally, and as seen from a namespace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import ScopeDep
from strataflow.errors import BadRequestError, not_found
from strataflow.extractors.registry import describe, find_extractor, registered
from strataflow.schemas.common import ERROR_RESPONSES

router = APIRouter(tags=["Feature Extractors"], responses=ERROR_RESPONSES)


@router.get("/v1/collections/features/extractors")
def list_feature_extractors() -> list[dict[str, Any]]:
    return [describe(extractor) for extractor in registered()]


@router.get("/v1/collections/features/extractors/{feature_extractor_id}")
def get_feature_extractor(feature_extractor_id: str) -> dict[str, Any]:
    extractor = find_extractor(feature_extractor_id)
    if extractor is None:
        raise not_found("Feature extractor", feature_extractor_id)
    return describe(extractor)


def _check_namespace(namespace_id: str, scope: ScopeDep) -> None:
    if namespace_id not in (scope.namespace_id, scope.namespace_name):
        raise BadRequestError(
            "The namespace in the path differs from X-Namespace",
            {"path_namespace": namespace_id, "header_namespace": scope.namespace_id},
        )


@router.get("/v1/namespaces/{namespace_id}/extractors", tags=["Namespace Extractors"])
def list_namespace_extractors(
    namespace_id: str, scope: ScopeDep, source: str | None = None, include_disabled: bool = False
) -> dict[str, Any]:
    _check_namespace(namespace_id, scope)
    entries = [describe(e) for e in registered()]
    if source is not None:
        entries = [e for e in entries if e["source"] == source]
    return {
        "extractors": entries,
        "total": len(entries),
        "namespace_id": scope.namespace_id,
        "builtin_count": len(entries),
        "custom_count": 0,
    }


@router.get("/v1/namespaces/{namespace_id}/extractors/{extractor_id}", tags=["Namespace Extractors"])
def get_namespace_extractor(namespace_id: str, extractor_id: str, scope: ScopeDep) -> dict[str, Any]:
    _check_namespace(namespace_id, scope)
    extractor = find_extractor(extractor_id)
    if extractor is None:
        raise not_found("Feature extractor", extractor_id)
    return {**describe(extractor), "is_enabled": True}
