"""Taxonomies through the official SDK: TaxonomiesApi (create, get, list, patch, versions, clone,
execute, delete) and CollectionTaxonomiesApi.apply_taxonomy_to_collection, against a live server
whose reference nodes and documents this process writes as a worker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import mixpeek
import pytest
from mixpeek import (
    BucketObjectsApi,
    BucketsApi,
    CollectionsApi,
    CollectionTaxonomiesApi,
    NamespacesApi,
    RetrieversApi,
    TasksApi,
    TaxonomiesApi,
)
from mixpeek.exceptions import BadRequestException, ConflictException, NotFoundException
from mixpeek.models import (
    ApplyTaxonomyRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CloneTaxonomyRequest,
    Config1,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    CreateRetrieverRequest,
    CreateTaxonomyRequest,
    Data,
    EnrichmentField,
    EnrichmentMergeMode,
    ExecuteTaxonomyRequest,
    FlatTaxonomyConfigInput,
    InputMapping,
    InputSourceType,
    ListTaxonomiesRequest,
    PatchTaxonomyRequest,
    Payload1,
    RetrieverInputSchemaFieldInput,
    RetrieverInputSchemaFieldType,
    SourceCollectionInput,
    StageConfigInput,
    StageType,
    TaxonomyModelInput,
)

from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime
from tests.collection_flows import run
from tests.compat.conftest import API_KEY, LiveServer, use_namespace

pytestmark = pytest.mark.compat
FEATURE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
NODES = [
    ("marine life", "Creatures of the ocean: fish, whales and coral reefs."),
    ("baking", "Making bread and cakes in an oven with flour and yeast."),
]
DOCS = [
    "Dolphins leap beside the boat while the pod hunts sardines.",
    "Knead the dough, let it rise overnight, then bake it.",
]


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=live_server.data_dir, api_key=API_KEY))
    yield runtime
    runtime.close()


def _text_collection(sdk: mixpeek.ApiClient, worker: Runtime, name: str, texts: list[tuple[str, str]]) -> str:
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name=name,
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )
    objects = [
        BucketObjectsApi(sdk)
        .create_object_buckets(
            bucket.bucket_id,
            CreateObjectRequest(
                blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data(text))],
                additional_properties={"metadata": {"title": title}},
            ),
        )
        .object_id
        for title, text in texts
    ]
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": f"{name}_text",
                "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "field_passthrough": [{"source_path": "title"}],
                    "parameters": {"extractor_type": "text_extractor", "split_by": "none"},
                },
            }
        )
    )
    assert run(worker, collection.collection_id, objects).documents_written == len(texts)
    return str(collection.collection_id)


def _finished(sdk: mixpeek.ApiClient, task_id: str) -> str:
    deadline = time.monotonic() + 180
    while (status := TasksApi(sdk).get_task(task_id).status.value) not in ("COMPLETED", "FAILED", "CANCELED"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return str(status)


def test_taxonomies_through_sdk(sdk: mixpeek.ApiClient, worker: Runtime) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_taxonomies"))
    use_namespace(sdk, ns.namespace_id)
    nodes = _text_collection(sdk, worker, "nodes", NODES)
    passages = _text_collection(sdk, worker, "passages", [(f"doc {i}", text) for i, text in enumerate(DOCS)])
    retriever = RetrieversApi(sdk).create_retriever(
        CreateRetrieverRequest(
            retriever_name="node_search",
            collection_identifiers=[nodes],
            input_schema={
                "query": RetrieverInputSchemaFieldInput(type=RetrieverInputSchemaFieldType.TEXT, required=True)
            },
            stages=[
                StageConfigInput(
                    stage_name="search",
                    stage_type=StageType.FILTER,
                    config={
                        "stage_id": "feature_search",
                        "parameters": {"searches": [{"feature_uri": FEATURE, "query": "{{INPUT.query}}", "top_k": 5}]},
                    },
                )
            ],
        )
    )
    config = FlatTaxonomyConfigInput(
        retriever_id=retriever.retriever_id,
        input_mappings=[InputMapping(input_key="query", source_type=InputSourceType.PAYLOAD, path="text")],
        source_collection=SourceCollectionInput(
            collection_id=nodes,
            enrichment_fields=[
                EnrichmentField(field_path="title", target_field="category", merge_mode=EnrichmentMergeMode.REPLACE)
            ],
        ),
    )
    api = TaxonomiesApi(sdk)
    created = api.create_taxonomy_taxonomies(CreateTaxonomyRequest(taxonomy_name="topics", config=Config1(config)))
    tid = created.taxonomy_id
    assert tid.startswith("tax_") and created.version == 1
    assert created.config.actual_instance.retriever_id == retriever.retriever_id
    assert api.get_taxonomy_taxonomies("topics").taxonomy_id == tid
    listed = api.list_taxonomies_0(list_taxonomies_request=ListTaxonomiesRequest(search="top"))
    assert [t.taxonomy_id for t in listed.results] == [tid] and listed.stats.flat_taxonomies == 1
    assert api.list_taxonomies().total_count == 1
    assert api.patch_taxonomy_taxonomies(tid, PatchTaxonomyRequest(description="demo")).description == "demo"

    executed = api.execute_taxonomy_taxonomies_0(
        tid,
        Payload1(
            ExecuteTaxonomyRequest(
                taxonomy=TaxonomyModelInput.from_dict(created.to_dict()),
                source_documents=[{"document_id": "x", "text": "A whale sang to its calf in the deep water."}],
            )
        ),
    )
    assert executed.stats.enriched == 1 and executed.matches[0].label == "marine life"
    assert executed.results[0]["category"] == "marine life"

    version = api.create_taxonomy_version_taxonomies(tid, {"config": {**config.to_dict(), "top_k": 2}})
    assert version.version == 2
    assert [v.version for v in api.list_taxonomy_versions_taxonomies(tid).results] == [2, 1]
    clone = api.clone_taxonomy_taxonomies(tid, CloneTaxonomyRequest(taxonomy_name="topics_copy"))
    assert clone.source_taxonomy_id == tid and clone.taxonomy.taxonomy_id != tid

    collections = CollectionsApi(sdk)
    with pytest.raises(BadRequestException):  # not attached yet
        CollectionTaxonomiesApi(sdk).apply_taxonomy_to_collection(passages, ApplyTaxonomyRequest(taxonomy_id=tid))
    collections.update_collection(passages, {"taxonomy_applications": [{"taxonomy_id": tid}]})
    applied = CollectionTaxonomiesApi(sdk).apply_taxonomy_to_collection(
        passages, ApplyTaxonomyRequest(taxonomy_id=tid, batch_size=100)
    )
    assert applied.taxonomy_id == tid and applied.estimated_documents == 2
    deadline = time.monotonic() + 120
    while (task := TasksApi(sdk).get_task(applied.task_id)).status.value not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert task.status.value == "COMPLETED"
    labels = sorted(str(d.payload.get("category")) for d in worker.index.query(passages, None))
    assert labels == ["baking", "marine life"]

    # A collection whose source is a taxonomy holds the enriched output of an application naming it
    # as target_collection_id; the collection applying it is not changed in place.
    target = collections.create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "passages_topics",
                "source": {"type": "taxonomy", "collection_id": passages},
                "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"},
            }
        )
    )
    assert target.source.type.value == "taxonomy" and target.source.collection_id == passages
    copy_id = clone.taxonomy.taxonomy_id
    updated = collections.update_collection(
        passages,
        {
            "taxonomy_applications": [
                {"taxonomy_id": tid},
                {"taxonomy_id": copy_id, "target_collection_id": target.collection_id},
            ]
        },
    )
    assert updated.taxonomy_applications[1].target_collection_id == target.collection_id
    triggered = collections.trigger_collection(target.collection_id)
    assert _finished(sdk, triggered.task_id) == "COMPLETED"
    enriched = worker.index.query(target.collection_id, None)
    assert sorted(str(d.internal.get(f"_taxonomy_{copy_id}_label")) for d in enriched) == labels
    assert not any(f"_taxonomy_{copy_id}_label" in d.internal for d in worker.index.query(passages, None))
    reapplied = CollectionTaxonomiesApi(sdk).apply_taxonomy_to_collection(
        passages, ApplyTaxonomyRequest(taxonomy_id=copy_id)
    )
    assert reapplied.estimated_documents == 2 and _finished(sdk, reapplied.task_id) == "COMPLETED"
    with pytest.raises(BadRequestException):  # a target must be a taxonomy source reading the collection
        collections.update_collection(
            passages, {"taxonomy_applications": [{"taxonomy_id": tid, "target_collection_id": nodes}]}
        )

    with pytest.raises(ConflictException):  # still applied by the collection
        api.delete_taxonomy_taxonomies(tid)
    collections.update_collection(passages, {"taxonomy_applications": []})
    api.delete_taxonomy_taxonomies(tid)
    with pytest.raises(NotFoundException):
        api.get_taxonomy_taxonomies(tid)
