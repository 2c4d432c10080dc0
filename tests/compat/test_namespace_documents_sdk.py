"""Namespace-wide documents (`DocumentsApi`: by id alone, batch-get, list, batch list) through the
official SDK, whose response models validate every answer."""

from __future__ import annotations

import mixpeek
import pytest
from mixpeek import BucketsApi, CollectionDocumentsApi, CollectionsApi, DocumentsApi, NamespacesApi
from mixpeek.models import (
    BatchGetDocumentsRequest,
    BatchListDocumentsRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    DocumentCreateRequest,
    NamespaceListDocumentsRequest,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat


def _namespace_with_notes(sdk: mixpeek.ApiClient, name: str, notes: list[tuple[str, str, int]]) -> dict[str, str]:
    """A namespace holding the notes (collection, title, views), each collection created on first use;
    returns {title: document id} and the collections' ids under their names."""
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name=name))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="notes",
            bucket_schema=BucketSchemaInput(
                properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
            ),
        )
    )
    ids: dict[str, str] = {}
    for collection, title, views in notes:
        if collection not in ids:
            ids[collection] = (
                CollectionsApi(sdk)
                .create_collection(
                    CreateCollectionRequest.from_dict(
                        {
                            "collection_name": collection,
                            "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
                            "feature_extractor": {
                                "feature_extractor_name": "text_extractor",
                                "version": "v1",
                                "input_mappings": {"text": "content"},
                                "parameters": {"extractor_type": "text_extractor", "split_by": "none"},
                            },
                        }
                    )
                )
                .collection_id
            )
        made = CollectionDocumentsApi(sdk).create_document(
            ids[collection], DocumentCreateRequest.from_dict({"title": title, "views": views})
        )
        ids[title] = made.document_id
    return ids


def test_namespace_documents_through_sdk(sdk: mixpeek.ApiClient) -> None:
    other = _namespace_with_notes(sdk, "sdk_ns_docs_other", [("alpha", "elsewhere", 7)])
    ids = _namespace_with_notes(
        sdk, "sdk_ns_docs", [("alpha", "tides", 30), ("beta", "bread", 5), ("alpha", "wind", 1)]
    )
    documents = DocumentsApi(sdk)

    fetched = documents.get_document_ns(ids["bread"], return_vectors=False, return_presigned_urls=True)
    assert fetched.document_id == ids["bread"] and fetched.collection_id == ids["beta"]
    assert fetched.additional_properties["title"] == "bread"
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        documents.get_document_ns(other["elsewhere"])  # another namespace's document

    patched = documents.patch_document_ns(ids["tides"], {"reviewed": True})
    assert patched.additional_properties["reviewed"] is True and patched.additional_properties["views"] == 30
    replaced = documents.update_document_ns(ids["wind"], {"title": "gale"})
    assert replaced.additional_properties["title"] == "gale" and "views" not in replaced.additional_properties
    assert documents.get_document_ns(ids["wind"]).additional_properties["title"] == "gale"

    got = documents.batch_get(
        BatchGetDocumentsRequest(document_ids=[ids["wind"], "doc_missing", ids["bread"], other["elsewhere"]])
    )
    assert [d.document_id for d in got.documents or []] == [ids["wind"], ids["bread"]]
    assert got.not_found == ["doc_missing", other["elsewhere"]]

    listed = documents.list_documents_ns(
        namespace_list_documents_request=NamespaceListDocumentsRequest.from_dict(
            {"sort": {"field": "views", "direction": "desc"}, "include_total": True, "limit": 2}
        )
    )
    assert [d.additional_properties["title"] for d in listed.results or []] == ["tides", "bread"]
    assert listed.total_documents == 3 and listed.pagination.next_cursor
    rest = documents.list_documents_ns(
        namespace_list_documents_request=NamespaceListDocumentsRequest.from_dict(
            {"sort": {"field": "views", "direction": "desc"}, "limit": 2, "cursor": listed.pagination.next_cursor}
        )
    )
    assert [d.document_id for d in rest.results or []] == [ids["wind"]] and rest.pagination.next_cursor is None
    narrowed = documents.list_documents_ns(
        namespace_list_documents_request=NamespaceListDocumentsRequest(collection_ids=["beta", "col_nope"])
    )
    assert [d.document_id for d in narrowed.results or []] == [ids["bread"]]
    assert narrowed.unknown_collection_ids == ["col_nope"]
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        documents.list_documents_ns(namespace_list_documents_request=NamespaceListDocumentsRequest(group_by="title"))

    batch = documents.list_documents_batch(
        BatchListDocumentsRequest.from_dict(
            {
                "queries": [
                    {"key": "alpha", "request": {"collection_ids": ["alpha"]}},
                    {"key": "grouped", "request": {"group_by": "title"}},
                ]
            }
        )
    )
    assert [r.key for r in batch.results] == ["alpha", "grouped"]
    alpha = batch.results[0].response
    assert alpha is not None and {d.document_id for d in alpha.results or []} == {ids["tides"], ids["wind"]}
    assert batch.results[1].response is None and batch.results[1].error
