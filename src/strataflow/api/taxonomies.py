"""Taxonomies: CRUD, versions, clone, execute (dry run), and apply-taxonomy on a collection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep, paged
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.taxonomies import (
    ApplyTaxonomyRequest,
    CloneTaxonomyRequest,
    CreateNodeFromDocumentsRequest,
    CreateTaxonomyFromDocumentsRequest,
    CreateTaxonomyRequest,
    CreateVersionRequest,
    ExecuteTaxonomyRequest,
    ListTaxonomiesRequest,
    PatchTaxonomyRequest,
)
from strataflow.services.retrievers import crud as retrievers
from strataflow.services.taxonomies import crud as service
from strataflow.services.taxonomies import promote
from strataflow.services.taxonomies.apply import request_apply
from strataflow.services.taxonomies.execute import execute_taxonomy

router = APIRouter(tags=["Taxonomies"], responses=ERROR_RESPONSES)
PREFIX = "/v1/taxonomies"


@router.post(PREFIX)
def create_taxonomy(
    request: CreateTaxonomyRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return service.taxonomy_view(service.create_taxonomy(session, scope, request, runtime.blobs))


@router.post(f"{PREFIX}/list")
def list_taxonomies(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListTaxonomiesRequest | None = None
) -> dict[str, Any]:
    request = request or ListTaxonomiesRequest()
    result, total = service.list_taxonomies(session, scope, request, paged(page, request))
    views = [service.taxonomy_view(r) for r in result.rows]
    return {
        "results": views,
        "pagination": {**result.pagination, "total": total},
        "total_count": total,
        "stats": service.list_stats(views),
    }


@router.get(PREFIX)
def list_taxonomies_get(scope: ScopeDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    return list_taxonomies(scope, session, page, None)


@router.post(f"{PREFIX}/from-documents")
def create_from_documents(
    request: CreateTaxonomyFromDocumentsRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """A flat taxonomy with its node collection, retriever and nodes, from documents or a cluster run."""
    makers = promote.RetrieverMaker(retrievers.create_retriever, retrievers.delete_retriever)
    return promote.create_from_documents(session, runtime.index, scope, request, makers)


@router.post(f"{PREFIX}/{{taxonomy_identifier}}/nodes/from-documents")
def nodes_from_documents(
    taxonomy_identifier: str,
    request: CreateNodeFromDocumentsRequest,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """One node anchored on the mean of the documents' stored vectors."""
    return promote.add_node(session, runtime.index, scope, taxonomy_identifier, request)


@router.post(f"{PREFIX}/execute/{{taxonomy_identifier}}")
def execute_by_path(
    taxonomy_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    request: ExecuteTaxonomyRequest | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    return execute_taxonomy(
        session, runtime.index, scope, taxonomy_identifier, request or ExecuteTaxonomyRequest(), version
    )


@router.post(f"{PREFIX}/{{taxonomy_identifier}}/execute")
def execute(
    taxonomy_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    request: ExecuteTaxonomyRequest | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    return execute_by_path(taxonomy_identifier, scope, session, runtime, request, version)


@router.get(f"{PREFIX}/{{taxonomy_identifier}}")
def get_taxonomy(taxonomy_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return service.taxonomy_view(service.get_taxonomy(session, scope, taxonomy_identifier))


@router.patch(f"{PREFIX}/{{taxonomy_identifier}}")
def patch_taxonomy(
    taxonomy_identifier: str, request: PatchTaxonomyRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    return service.taxonomy_view(service.patch_taxonomy(session, scope, taxonomy_identifier, request))


@router.delete(f"{PREFIX}/{{taxonomy_identifier}}")
def delete_taxonomy(taxonomy_identifier: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    deleted = service.delete_taxonomy(session, scope, taxonomy_identifier)
    return {"success": True, "message": f"Taxonomy {deleted} deleted", "taxonomy_id": deleted}


@router.post(f"{PREFIX}/{{taxonomy_identifier}}/clone")
def clone_taxonomy(
    taxonomy_identifier: str, request: CloneTaxonomyRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    source = service.get_taxonomy(session, scope, taxonomy_identifier).taxonomy_id
    clone = service.clone_taxonomy(session, scope, taxonomy_identifier, request, runtime.blobs)
    return {"taxonomy": service.taxonomy_view(clone), "source_taxonomy_id": source}


@router.get(f"{PREFIX}/{{taxonomy_id}}/versions")
def list_versions(taxonomy_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    taxonomy = service.get_taxonomy(session, scope, taxonomy_id)
    views = [service.version_view(v, taxonomy) for v in service.list_versions(session, scope, taxonomy_id)]
    return {
        "results": views,
        "pagination": {"total": len(views), "page": 1, "page_size": len(views)},
        "total_count": len(views),
        "stats": service.list_stats(views),
    }


@router.post(f"{PREFIX}/{{taxonomy_id}}/versions")
def create_version(
    taxonomy_id: str, request: CreateVersionRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The new version is re-applied at once to every collection that applies the taxonomy."""
    row = service.create_version(session, scope, taxonomy_id, request, runtime.blobs)
    view = service.taxonomy_view(row)
    tasks = []
    for collection_id in service.applying_collections(session, row.taxonomy_id, scope.namespace_id):
        answer = request_apply(
            session, runtime.index, scope, collection_id, ApplyTaxonomyRequest(taxonomy_id=row.taxonomy_id)
        )
        tasks.append(answer["task_id"])
    view["metadata"] = {**view["metadata"], "reapply_task_ids": tasks} if tasks else view["metadata"]
    return view


@router.post("/v1/collections/{collection_identifier}/apply-taxonomy", tags=["Collection Taxonomies"])
def apply_taxonomy(
    collection_identifier: str, request: ApplyTaxonomyRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return request_apply(session, runtime.index, scope, collection_identifier, request)
