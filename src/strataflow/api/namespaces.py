"""Namespaces: org-scoped (the namespace is in the path)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, PageDep, PrincipalDep, ReadDbDep, RuntimeDep, paged
from strataflow.clock import isoformat
from strataflow.schemas.common import ERROR_RESPONSES, AsyncTaskAccepted
from strataflow.schemas.namespaces import (
    CreateNamespaceRequest,
    ListNamespacesRequest,
    ListNamespacesResponse,
    NamespaceModel,
    PatchNamespaceRequest,
    UpdateNamespaceRequest,
)
from strataflow.services.tenancy import namespaces as service
from strataflow.store.tables import Namespace

router = APIRouter(prefix="/v1/namespaces", tags=["Namespaces"], responses=ERROR_RESPONSES)


def present(session: Session, row: Namespace) -> dict[str, Any]:
    return {
        "namespace_id": row.namespace_id,
        "namespace_name": row.namespace_name,
        "description": row.description,
        "infrastructure": row.infrastructure,
        "feature_extractors": row.feature_extractors,
        "payload_indexes": row.payload_indexes,
        "auto_create_indexes": row.auto_create_indexes,
        "collection_count": 0,
        "document_count": 0,
        **service.namespace_counts(session, row.namespace_id),
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


@router.post("", response_model=NamespaceModel)
def create_namespace(request: CreateNamespaceRequest, principal: PrincipalDep, session: DbDep) -> dict[str, Any]:
    return present(session, service.create_namespace(session, principal, request))


@router.post("/list", response_model=ListNamespacesResponse)
def list_namespaces(
    principal: PrincipalDep, session: ReadDbDep, page: PageDep, request: ListNamespacesRequest | None = None
) -> dict[str, Any]:
    request = request or ListNamespacesRequest()
    result, total = service.list_namespaces(session, principal, request, paged(page, request))
    return {
        "results": [present(session, r) for r in result.rows],
        "pagination": result.pagination,
        "total_count": total,
    }


@router.get("", response_model=ListNamespacesResponse)
def list_namespaces_get(principal: PrincipalDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    return list_namespaces(principal, session, page, None)


@router.get("/{namespace_identifier}", response_model=NamespaceModel)
def get_namespace(namespace_identifier: str, principal: PrincipalDep, session: ReadDbDep) -> dict[str, Any]:
    return present(session, service.get_namespace(session, principal, namespace_identifier))


@router.put("/{namespace_identifier}", response_model=NamespaceModel)
def update_namespace(
    namespace_identifier: str, request: UpdateNamespaceRequest, principal: PrincipalDep, session: DbDep
) -> dict[str, Any]:
    patch = PatchNamespaceRequest(**request.model_dump(exclude_unset=True))
    return present(session, service.update_namespace(session, principal, namespace_identifier, patch))


@router.patch("/{namespace_identifier}", response_model=NamespaceModel)
def patch_namespace(
    namespace_identifier: str, request: PatchNamespaceRequest, principal: PrincipalDep, session: DbDep
) -> dict[str, Any]:
    return present(session, service.update_namespace(session, principal, namespace_identifier, request))


@router.delete("/{namespace_identifier}", response_model=AsyncTaskAccepted)
def delete_namespace(
    namespace_identifier: str, principal: PrincipalDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    task = service.request_namespace_deletion(session, principal, namespace_identifier)
    runtime.jobs.notify()
    return {
        "task_id": task.task_id,
        "status": task.status,
        "namespace_id": task.namespace_id,
        "message": "Namespace deletion started; poll the task for completion.",
    }
