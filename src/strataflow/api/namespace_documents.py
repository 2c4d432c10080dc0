"""Documents addressed by id alone, across every collection of the caller's namespace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy.orm import Session

from strataflow.api import documents as collection_documents
from strataflow.api.deps import PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.api.documents import flat_listing, list_page
from strataflow.errors import StrataflowError
from strataflow.runtime import Runtime
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.documents import (
    BatchGetDocumentsRequest,
    BatchGetDocumentsResponse,
    BatchListDocumentsRequest,
    BatchListDocumentsResponse,
    DocumentResponse,
    ListDocumentsResponse,
    NamespaceListDocumentsRequest,
)
from strataflow.services.documents import crud, events
from strataflow.services.documents import namespace as service
from strataflow.services.documents.model import document_view
from strataflow.services.documents.vector_choice import ALL_VECTORS, NO_VECTORS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.pagination import PageRequest

router = APIRouter(prefix="/v1/documents", tags=["Documents"], responses=ERROR_RESPONSES)

# The fixed paths (/list, /list/batch, /batch-get) are declared before /{document_id}, so that an
# id route never captures them.


def _listing(
    session: Session,
    runtime: Runtime,
    scope: NamespaceScope,
    request: NamespaceListDocumentsRequest,
    page: PageRequest,
    *,
    with_vectors: bool,
    presign: bool,
) -> dict[str, Any]:
    result = service.list_namespace_documents(session, runtime.index, scope, request, page, with_vectors)
    blobs = runtime.blobs if presign else None
    vectors = ALL_VECTORS if with_vectors else NO_VECTORS
    shown = [document_view(d, vectors=vectors, select=request.select, blobs=blobs) for d in result.documents]
    answer = flat_listing(result.documents, shown, result.pagination, result.total)
    if result.unknown_collection_ids:  # present only when some named collections exist and some do not
        answer["unknown_collection_ids"] = result.unknown_collection_ids
    return answer


@router.post("/list", response_model=ListDocumentsResponse)
def list_documents(
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    page: PageDep,
    request: NamespaceListDocumentsRequest | None = None,
    return_vectors: bool = False,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    request = request or NamespaceListDocumentsRequest()
    return _listing(
        session,
        runtime,
        scope,
        request,
        list_page(page, request),
        with_vectors=bool(request.return_vectors) or return_vectors,
        presign=bool(request.return_url or request.return_presigned_urls) or return_presigned_urls,
    )


@router.post("/list/batch", response_model=BatchListDocumentsResponse)
def list_documents_batch(
    request: BatchListDocumentsRequest, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Each query runs as `/list` would with its body alone; one that fails is reported in its
    entry and the others still answer. They run one after another: the work is the index's, and
    threads would only contend for the same cores and the same database session."""
    results: list[dict[str, Any]] = []
    for query in request.queries:
        body = query.request
        try:
            response = _listing(
                session,
                runtime,
                scope,
                body,
                list_page(PageRequest(), body),
                with_vectors=bool(body.return_vectors),
                presign=bool(body.return_url or body.return_presigned_urls),
            )
        except StrataflowError as exc:
            results.append({"key": query.key, "response": None, "error": exc.message})
            continue
        results.append({"key": query.key, "response": response, "error": None})
    return {"results": results}


@router.post("/batch-get", response_model=BatchGetDocumentsResponse)
def batch_get(
    request: BatchGetDocumentsRequest, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    documents, missing = service.get_documents(session, runtime.index, scope, request.document_ids)
    blobs = runtime.blobs if request.return_presigned_urls else None
    return {"documents": [document_view(d, blobs=blobs) for d in documents], "not_found": missing}


@router.get("/{document_id}", response_model=DocumentResponse)
def get_document(
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
    return_vector_names: Annotated[str | None, Query(max_length=4096)] = None,
    expand: Annotated[str | None, Query(max_length=4096)] = None,
) -> dict[str, Any]:
    """The collection route's read, on the collection of this namespace holding the document."""
    collection = service.collection_of_document(session, runtime.index, scope, document_id)
    return collection_documents.get_document(
        collection.collection_id,
        document_id,
        scope,
        session,
        runtime,
        return_presigned_urls,
        return_vectors,
        return_vector_names,
        expand,
    )


def _update(
    document_id: str, scope: NamespaceScope, session: Session, runtime: Runtime, body: dict[str, Any], *, replace: bool
) -> dict[str, Any]:
    """The collection route's PUT/PATCH on the collection holding the document, with its event."""
    collection = service.collection_of_document(session, runtime.index, scope, document_id)
    doc = crud.update_document(runtime.index, collection, document_id, body, replace=replace)
    events.document_changed(runtime.db, collection, "document.updated", doc)
    return document_view(doc)


@router.put("/{document_id}", response_model=DocumentResponse)
def replace_document(
    document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    return _update(document_id, scope, session, runtime, body, replace=True)


@router.patch("/{document_id}", response_model=DocumentResponse)
def patch_document(
    document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    return _update(document_id, scope, session, runtime, body, replace=False)
