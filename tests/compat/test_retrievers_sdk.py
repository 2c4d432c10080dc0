"""Retrievers through the official SDK: RetrieversApi (create, get, list, patch, execute, delete) and
AdhocRetrieversApi, against a live server whose documents this process writes as a worker."""

from __future__ import annotations

from collections.abc import Iterator

import mixpeek
import pytest
from mixpeek import AdhocRetrieversApi, BucketObjectsApi, BucketsApi, CollectionsApi, NamespacesApi, RetrieversApi
from mixpeek.exceptions import BadRequestException, UnprocessableEntityException
from mixpeek.models import (
    AdhocExecuteRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    CreateRetrieverRequest,
    Data,
    ExecuteRetrieverRequest,
    ListRetrieversRequest,
    PatchRetrieverRequest,
    RetrieverInputSchemaFieldInput,
    RetrieverInputSchemaFieldType,
    SortDirection,
    SortOption,
    StageConfigInput,
    StageType,
)

from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime
from tests.collection_flows import run
from tests.compat.conftest import API_KEY, LiveServer, use_namespace

pytestmark = pytest.mark.compat
FEATURE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
NOTES = [
    "The harbour lighthouse guides ships at night.",
    "Fresh bread needs flour, water and yeast.",
    "Comets leave long tails of dust near the sun.",
]


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=live_server.data_dir, api_key=API_KEY))
    yield runtime
    runtime.close()


def _collection(sdk: mixpeek.ApiClient, worker: Runtime) -> str:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_retrievers"))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="notes",
            bucket_schema=BucketSchemaInput(
                properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
            ),
        )
    )
    objects = [
        BucketObjectsApi(sdk)
        .create_object_buckets(
            bucket.bucket_id,
            CreateObjectRequest(
                blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data(text))]
            ),
        )
        .object_id
        for text in NOTES
    ]
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "notes_text",
                "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "parameters": {"extractor_type": "text_extractor"},
                },
            }
        )
    )
    assert run(worker, collection.collection_id, objects).documents_written == 3
    return str(collection.collection_id)


def test_retrievers_through_sdk(sdk: mixpeek.ApiClient, worker: Runtime) -> None:
    collection_id = _collection(sdk, worker)
    stage = StageConfigInput(
        stage_name="search",
        stage_type=StageType.FILTER,
        config={
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": FEATURE, "query": "{{INPUT.query}}", "top_k": 50}],
                "final_top_k": 10,
            },
        },
    )
    schema = {"query": RetrieverInputSchemaFieldInput(type=RetrieverInputSchemaFieldType.TEXT, required=True)}
    api = RetrieversApi(sdk)
    created = api.create_retriever(
        CreateRetrieverRequest(
            retriever_name="notes_search",
            collection_identifiers=[collection_id],
            stages=[stage],
            input_schema=schema,
            metadata={"seed_version": 3},
        )
    )
    assert created.metadata == {"seed_version": 3}
    assert created.retriever_id.startswith("ret_") and created.collection_identifiers == [collection_id]
    assert created.stages[0].parameters["final_top_k"] == 10

    result = api.execute_retriever(
        created.retriever_id, ExecuteRetrieverRequest(inputs={"query": "a tail of ice and dust in space"}, limit=2)
    )
    assert result.execution_id.startswith("exec_") and result.status == "completed"
    assert len(result.documents) == 2 and result.documents[0]["text"] == NOTES[2]

    fetched = api.get_retriever(created.retriever_id)
    assert fetched.retriever_name == "notes_search" and fetched.version >= 1
    listed = api.list_retrievers(list_retrievers_request=ListRetrieversRequest(search="notes"))
    assert [r.retriever_id for r in listed.results] == [created.retriever_id]
    by_name = ListRetrieversRequest(sort=SortOption(field="retriever_name", direction=SortDirection.DESC))
    assert [r.retriever_id for r in api.list_retrievers(list_retrievers_request=by_name).results] == [
        created.retriever_id
    ]
    with pytest.raises(BadRequestException):  # the single sort is read, not dropped
        api.list_retrievers(list_retrievers_request=ListRetrieversRequest(sort=SortOption(field="secret")))
    api.patch_retriever(created.retriever_id, PatchRetrieverRequest(description="notes by meaning"))
    assert api.get_retriever(created.retriever_id).description == "notes by meaning"
    api.patch_retriever(created.retriever_id, PatchRetrieverRequest(metadata={"seed_version": 4}))
    assert api.get_retriever(created.retriever_id).metadata == {"seed_version": 4}

    adhoc = AdhocRetrieversApi(sdk).execute_adhoc_retriever(
        AdhocExecuteRequest(
            collection_identifiers=[collection_id], stages=[stage], input_schema=schema, inputs={"query": "baking"}
        ),
        return_vectors=True,
    )
    assert adhoc["documents"][0]["text"] == NOTES[1]
    assert len(adhoc["documents"][0]["text_extractor_v1_all_minilm_l6_v2"]) == 384

    with pytest.raises(UnprocessableEntityException) as missing:
        api.execute_retriever(created.retriever_id, ExecuteRetrieverRequest(inputs={}))
    assert missing.value.data.error.type == "ValidationError"
    bad_stage = StageConfigInput(
        stage_name="s",
        config={
            "stage_id": "feature_search",
            "parameters": {"searches": [{"feature_uri": "mixpeek://text_extractor@v1/nope", "query": "x"}]},
        },
    )
    with pytest.raises(BadRequestException) as unknown:
        api.create_retriever(
            CreateRetrieverRequest(retriever_name="broken", collection_identifiers=[collection_id], stages=[bad_stage])
        )
    assert "Unknown feature URI" in unknown.value.data.error.message

    api.delete_retriever(created.retriever_id)
    assert api.list_retrievers().results == []
