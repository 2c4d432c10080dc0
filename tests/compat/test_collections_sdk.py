"""Collections, documents, lineage and the extractor catalogue through the official SDK.

Documents are written by the collection runner in this test process, into the
live server's data directory (SQLite + LanceDB); the server must see them at
once, which is also the path a separate `strataflow worker` takes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import mixpeek
import pytest
from mixpeek import (
    BucketObjectsApi,
    BucketsApi,
    CollectionDocumentsApi,
    CollectionsApi,
    DocumentLineageApi,
    FeatureExtractorsApi,
    NamespacesApi,
)
from mixpeek.models import (
    BatchDeleteDocumentsRequest,
    BatchUpdateDocumentsRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    BulkUpdateDocumentsRequest,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    DocumentAggregationRequest,
    DocumentCreateRequest,
    FieldPassthrough,
    InputMappings,
    ListCollectionsRequest,
    ListDocumentsRequest,
    Parameters,
    SourceConfigInput,
    SourceType,
    TextExtractorParams,
)
from mixpeek.models import (
    SharedCollectionFeaturesExtractorsModelsFeatureExtractorConfigInput as FeatureExtractorConfig,
)

from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime
from tests.collection_flows import run
from tests.compat.conftest import API_KEY, LiveServer, use_namespace

pytestmark = pytest.mark.compat
ESSAY = "Tides follow the moon. Sailors read them.\n\nLighthouses warn ships. Keepers trim the wicks."


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[Runtime]:
    """This process, acting as a worker on the server's data directory."""
    runtime = open_runtime(Settings(data_dir=live_server.data_dir, api_key=API_KEY))
    yield runtime
    runtime.close()


def test_collections_documents_and_lineage_through_sdk(
    sdk: mixpeek.ApiClient, worker: Runtime, live_server: LiveServer
) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_collections"))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="essays",
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )
    obj = BucketObjectsApi(sdk).create_object_buckets(
        bucket.bucket_id,
        CreateObjectRequest(
            blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data(ESSAY))],
            additional_properties={"metadata": {"title": "Sea"}},
        ),
    )

    collections = CollectionsApi(sdk)
    created = collections.create_collection(
        CreateCollectionRequest(
            collection_name="essay_paragraphs",
            source=SourceConfigInput(type=SourceType.BUCKET, bucket_ids=[bucket.bucket_id]),
            feature_extractor=FeatureExtractorConfig(
                feature_extractor_name="text_extractor",
                version="v1",
                input_mappings=InputMappings({"text": "content"}),
                field_passthrough=[FieldPassthrough(source_path="title")],
                parameters=Parameters(TextExtractorParams(split_by="paragraphs", chunk_size=1)),
            ),
        )
    )
    assert created.collection_id.startswith("col_")
    assert created.feature_extractor.feature_extractor_id == "text_extractor_v1"
    assert isinstance(created.feature_extractor.parameters.actual_instance, TextExtractorParams)
    assert created.output_schema.properties["chunk_index"].type == BucketSchemaFieldType.INTEGER
    sentences = collections.create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "essay_sentences",
                "source": {"type": "collection", "collection_id": created.collection_id},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "text"},
                    "parameters": {"extractor_type": "text_extractor", "split_by": "sentences", "chunk_size": 1},
                },
            }
        )
    )
    assert sentences.source.collection_id == created.collection_id

    assert collections.get_collection("essay_paragraphs").collection_id == created.collection_id
    listed = collections.list_collections(list_collections_request=ListCollectionsRequest(search="essay"))
    assert listed.total_count == 2
    by_name = collections.list_collections(
        list_collections_request=ListCollectionsRequest(
            sorts=[{"field": "collection_name", "direction": "desc"}], include_system=True, page_size=1
        )
    )
    assert [c.collection_name for c in by_name.results] == ["essay_sentences"] and by_name.total_count == 2
    features = collections.describe_collection_features(created.collection_id).features
    assert features[0].feature_uri == "mixpeek://text_extractor@v1/all_minilm_l6_v2"
    assert features[0].vector_index.dimensions == 384
    assert collections.update_collection(created.collection_id, {"description": "by paragraph"}).description

    assert run(worker, created.collection_id, [obj.object_id]).documents_written == 2
    assert run(worker, sentences.collection_id).documents_written == 4

    documents = CollectionDocumentsApi(sdk)
    page = documents.list_documents(
        sentences.collection_id,
        list_documents_request=ListDocumentsRequest.from_dict(
            {
                "limit": 2,
                "filters": {"AND": [{"field": "text", "operator": "contains", "value": "the"}]},
                "sort": {"field": "chunk_index", "direction": "asc"},
            }
        ),
    )
    assert len(page.results) == 2 and page.pagination.next_cursor  # 3 sentences match "the"
    first = page.results[0]
    assert first.collection_id == sentences.collection_id
    fetched = documents.get_document(sentences.collection_id, first.document_id, return_vectors=True)
    assert len(fetched.additional_properties["text_extractor_v1_all_minilm_l6_v2"]) == 384
    assert fetched.internal.lineage.source_type == "collection"

    patched = documents.patch_document(sentences.collection_id, first.document_id, {"reviewed": True})
    assert patched.additional_properties["reviewed"] is True
    replaced = documents.update_document(sentences.collection_id, first.document_id, {"text": "Rewritten."})
    assert replaced.additional_properties["text"] == "Rewritten."
    bulk = documents.bulk_update(sentences.collection_id, BulkUpdateDocumentsRequest(update_data={"batch": 1}))
    assert bulk.updated_count == 4
    batch = documents.batch_update(
        sentences.collection_id,
        BatchUpdateDocumentsRequest.from_dict(
            {"updates": [{"document_id": first.document_id, "update_data": {"batch": 2}}]}
        ),
    )
    assert batch.updated_count == 1
    counts = documents.aggregate_documents(
        sentences.collection_id,
        DocumentAggregationRequest.from_dict(
            {"group_by": [{"field": "batch"}], "aggregations": [{"function": "count", "alias": "n"}]}
        ),
    )
    assert sorted(r.metrics["n"] for r in counts.results) == [1, 3]
    made = documents.create_document(
        sentences.collection_id,
        DocumentCreateRequest(collection_id=sentences.collection_id, metadata={"origin": "sdk"}),
    )
    assert made.document_id.startswith("doc_")
    removed = documents.batch_delete(
        sentences.collection_id, BatchDeleteDocumentsRequest(document_ids=[made.document_id], reason="sdk cleanup")
    )
    assert removed.deleted_count == 1
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Namespace": ns.namespace_id}
    events = httpx.get(
        f"{live_server.url}/v1/events", params={"event_type": "documents.deleted.batch"}, headers=headers
    ).json()
    assert [e["payload"]["reason"] for e in events["results"]] == ["sdk cleanup"]

    lineage_api = DocumentLineageApi(sdk)
    lineage = lineage_api.get_document_lineage(sentences.collection_id, first.document_id)
    assert lineage.depth == 2 and lineage.lineage.root_object_id == obj.object_id
    assert [s.collection_id for s in lineage.lineage.lineage_chain] == [created.collection_id, sentences.collection_id]
    by_object = lineage_api.get_documents_by_object(obj.object_id)
    assert by_object["total"] == 6
    tree = lineage_api.get_decomposition_tree_objects(obj.object_id, include_document_ids=True)
    assert tree["collections"][0]["children"][0]["document_count"] == 4

    with pytest.raises(mixpeek.exceptions.ConflictException):
        collections.delete_collection(created.collection_id)
    collections.delete_collection(sentences.collection_id)
    collections.delete_collection(created.collection_id)
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        collections.get_collection(created.collection_id)


def test_bad_collections_are_refused_through_sdk(sdk: mixpeek.ApiClient) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_bad_collections"))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="b",
            bucket_schema=BucketSchemaInput(
                properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
            ),
        )
    )
    request = {
        "collection_name": "broken",
        "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
        "feature_extractor": {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "missing_field"},
        },
    }
    with pytest.raises(mixpeek.exceptions.BadRequestException) as bad:
        CollectionsApi(sdk).create_collection(CreateCollectionRequest.from_dict(request))
    assert bad.value.data.error.type == "BadRequestError" and "missing_field" in bad.value.data.error.message
    with pytest.raises(mixpeek.exceptions.UnprocessableEntityException):
        CollectionsApi(sdk).create_collection(
            CreateCollectionRequest.from_dict(
                {
                    **request,
                    "feature_extractor": {
                        **request["feature_extractor"],
                        "input_mappings": {"text": "content"},
                        "parameters": {
                            "extractor_type": "text_extractor",
                            "chunk_size": 5,
                            "chunk_overlap": 9,
                            "split_by": "words",
                        },
                    },
                }
            )
        )


def test_extractor_catalogue_through_sdk(sdk: mixpeek.ApiClient) -> None:
    api = FeatureExtractorsApi(sdk)
    listed = api.list_feature_extractors()
    assert {e.feature_extractor_id for e in listed} >= {"text_extractor_v1", "passthrough_extractor_v1"}
    text = api.get_feature_extractor_by("text_extractor_v1")
    dims = {v.name: v.index.actual_instance.dimensions for v in text.required_vector_indexes}
    assert dims == {"all_minilm_l6_v2": 384, "wordllama_l2_supercat_256": 256}
    assert text.position_fields == ["chunk_index"]
