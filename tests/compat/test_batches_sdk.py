"""Batches through the SDK's BucketBatchesApi, BatchesApi and TasksApi, against a live server.

Beyond the basic flow: a three-tier DAG whose tier 0 loses a row, retried tier by tier; documents
removed by hand, found by the audit (exactly those) and healed; bad tier requests refused with
nothing changed. Then the batches across buckets, bulk-submit, submit-all, resubmit, document
removal, estimate, diagnose. (One module, so one live server and one model load serve them all.)"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek import (
    BatchesApi,
    BucketBatchesApi,
    BucketObjectsApi,
    BucketsApi,
    CollectionDocumentsApi,
    CollectionsApi,
    NamespacesApi,
    TasksApi,
)
from mixpeek.models import (
    AddObjectsToBatchRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    BulkSubmitBatchesRequest,
    CreateBatchRequest,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    DedupStrategy,
    FieldPassthrough,
    InputMappings,
    ListBatchesRequest,
    ListDocumentsRequest,
    LogicalOperatorInput,
    Parameters,
    PatchBatchRequest,
    SourceConfigInput,
    SourceType,
    SubmitBatchRequest,
    TextExtractorParams,
    TriggerCollectionRequest,
)
from mixpeek.models import BodyHealTierV1BucketsBucketIdentifierBatchesBatchIdTiersTierNumHealPost as HealBody
from mixpeek.models import (
    SharedCollectionFeaturesExtractorsModelsFeatureExtractorConfigInput as FeatureExtractorConfig,
)

from tests.compat.conftest import use_namespace
from tests.live import API_KEY, LiveServer

pytestmark = pytest.mark.compat
TERMINAL = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> str:
    for _ in range(1200):
        status = TasksApi(sdk).get_task(task_id).status.value
        if status in TERMINAL:
            return str(status)
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def _world(sdk: mixpeek.ApiClient, namespace: str = "sdk_batches") -> tuple[str, str, list[str]]:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name=namespace))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="docs",
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )
    objects = BucketObjectsApi(sdk)
    object_ids = [
        objects.create_object_buckets(
            bucket.bucket_id,
            CreateObjectRequest(
                blobs=[
                    CreateBlobRequest(
                        var_property="content",
                        type=BucketSchemaFieldType.TEXT,
                        data=Data(f"First point {i}. Second point {i}."),
                    )
                ],
                additional_properties={"metadata": {"title": f"doc {i}"}},
            ),
        ).object_id
        for i in range(3)
    ]
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest(
            collection_name="docs_text",
            source=SourceConfigInput(type=SourceType.BUCKET, bucket_ids=[bucket.bucket_id]),
            feature_extractor=FeatureExtractorConfig(
                feature_extractor_name="text_extractor",
                version="v1",
                input_mappings=InputMappings({"text": "content"}),
                field_passthrough=[FieldPassthrough(source_path="title")],
                parameters=Parameters(TextExtractorParams(split_by="sentences", chunk_size=1)),
            ),
        )
    )
    return str(bucket.bucket_id), str(collection.collection_id), object_ids


def test_batch_flow_through_the_sdk(sdk: mixpeek.ApiClient) -> None:
    bucket_id, collection_id, object_ids = _world(sdk)
    batches = BucketBatchesApi(sdk)
    batch = batches.create_batch_buckets_batches(bucket_id, CreateBatchRequest(object_ids=object_ids[:2]))
    assert batch.status.value == "DRAFT" and batch.max_node_death_resubmits == 3
    batch = batches.add_objects_to_batch_buckets_batches(
        bucket_id, batch.batch_id, AddObjectsToBatchRequest(object_ids=object_ids[1:])
    )
    assert batch.object_ids == object_ids
    task = batches.submit_batch_buckets_batches(
        bucket_id, batch.batch_id, submit_batch_request=SubmitBatchRequest(include_processing_history=True)
    )
    assert task.task_type.value == "api_buckets_batches_process"
    assert _wait(sdk, task.task_id) == "COMPLETED"

    done = batches.get_batch_buckets_batches(bucket_id, batch.batch_id)
    assert done.status.value == "COMPLETED" and done.total_tiers == 1 and done.current_tier == 0
    assert done.tier_tasks[0].status.value == "COMPLETED" and done.tier_tasks[0].documents_written == 6
    assert done.tier_tasks[0].source_type == "bucket" and done.dag_tiers == [[collection_id]]
    docs = CollectionDocumentsApi(sdk).list_documents(
        collection_id, list_documents_request=ListDocumentsRequest(limit=50)
    )
    assert len(docs.results) == 6
    patched = batches.patch_batch_buckets_batches(
        bucket_id, batch.batch_id, PatchBatchRequest.from_dict({"metadata": {"a": 1}})
    )
    assert patched.metadata.to_dict() == {"a": 1}
    listed = batches.list_batches_buckets(bucket_id, ListBatchesRequest(status="COMPLETED"))
    assert listed.total_count == 1 and listed.results[0].batch_id == batch.batch_id
    scoped = batches.list_batches_buckets(bucket_id, ListBatchesRequest(collection_id=collection_id, limit=1))
    assert [b.batch_id for b in scoped.results] == [batch.batch_id] and scoped.pagination["next_cursor"] is None
    absent = ListBatchesRequest(collection_id="col_absent0000", bucket_id=bucket_id)
    assert batches.list_batches_buckets(bucket_id, absent).total_count == 0
    failed = batches.get_failed_documents_buckets_batches_batch(bucket_id, batch.batch_id, tier_num=0)
    assert failed["total"] == 0
    logs = batches.get_batch_logs_buckets_batches(bucket_id, batch.batch_id)
    assert logs["tiers"][0]["logs"]

    triggered = CollectionsApi(sdk).trigger_collection(collection_id, TriggerCollectionRequest())
    assert triggered.collection_id == collection_id and triggered.total_tiers == 1 and triggered.object_count == 3
    assert _wait(sdk, triggered.task_id) == "COMPLETED"
    again = CollectionDocumentsApi(sdk).list_documents(
        collection_id, list_documents_request=ListDocumentsRequest(limit=50)
    )
    assert len(again.results) == 6  # re-processing overwrote the same documents

    held = batches.create_batch_buckets_batches(bucket_id, CreateBatchRequest(object_ids=object_ids))
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        batches.cancel_batch_buckets_batches(bucket_id, held.batch_id)
    assert batches.delete_batch_buckets_batches(bucket_id, held.batch_id).success is True


def test_batch_created_from_a_filter_and_a_collection_scope(sdk: mixpeek.ApiClient) -> None:
    """The SDK's create options reach the server: filters pick the objects, collection_ids the collections."""
    bucket_id, collection_id, object_ids = _world(sdk, "sdk_batch_options")
    other = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest(
            collection_name="docs_words",
            source=SourceConfigInput(type=SourceType.BUCKET, bucket_ids=[bucket_id]),
            feature_extractor=FeatureExtractorConfig(
                feature_extractor_name="text_extractor",
                version="v1",
                input_mappings=InputMappings({"text": "content"}),
                parameters=Parameters(TextExtractorParams(split_by="words", chunk_size=2)),
            ),
        )
    )
    batches = BucketBatchesApi(sdk)
    title_is = LogicalOperatorInput.from_dict(
        {"AND": [{"field": "metadata.title", "operator": "eq", "value": "doc 1"}]}
    )
    request = CreateBatchRequest(
        filters=title_is, collection_ids=[collection_id], batch_name="doc one", dedup_strategy=DedupStrategy.FORCE
    )
    batch = batches.create_batch_buckets_batches(bucket_id, request)
    assert batch.object_ids == [object_ids[1]] and batch.batch_name == "doc one"
    assert batch.collection_ids == [collection_id] and batch.dedup_strategy == DedupStrategy.FORCE
    task = batches.submit_batch_buckets_batches(bucket_id, batch.batch_id, submit_batch_request=SubmitBatchRequest())
    assert _wait(sdk, task.task_id) == "COMPLETED"
    done = batches.get_batch_buckets_batches(bucket_id, batch.batch_id)
    assert done.dag_tiers == [[collection_id]] and done.tier_tasks[0].documents_written == 2
    documents = CollectionDocumentsApi(sdk)
    assert len(documents.list_documents(collection_id, list_documents_request=ListDocumentsRequest()).results) == 2
    untouched = documents.list_documents(other.collection_id, list_documents_request=ListDocumentsRequest())
    assert untouched.results == []
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        batches.create_batch_buckets_batches(
            bucket_id,
            CreateBatchRequest(
                filters=LogicalOperatorInput.from_dict(
                    {"AND": [{"field": "metadata.title", "operator": "eq", "value": "none"}]}
                )
            ),
        )


TEXTS = ["Red fox runs. Blue bird sings.", "Green frog jumps. Gray owl hoots.", "Tall tree grows. Cold wind blows."]


class World:
    """Setup over plain HTTP (not what is under test): a namespace, a bucket, three chained collections."""

    def __init__(self, server: LiveServer, namespace: str = "tiers", tiers: int = 3) -> None:
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        self.http.post(
            "/v1/namespaces", json={"namespace_name": namespace, "feature_extractors": []}
        ).raise_for_status()
        self.http.headers["X-Namespace"] = namespace
        schema = {"properties": {"content": {"type": "text"}}}
        bucket = self.http.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema})
        self.bucket_id = str(bucket.json()["bucket_id"])
        self.collections = []
        source: dict[str, Any] = {"type": "bucket", "bucket_ids": [self.bucket_id]}
        for name, mapping, split, size in (
            ("tier0", "content", "sentences", 1),
            ("tier1", "text", "words", 2),
            ("tier2", "text", "words", 1),
        )[:tiers]:
            body = {
                "collection_name": name,
                "source": source,
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": mapping},
                    "parameters": {"extractor_type": "text_extractor", "split_by": split, "chunk_size": size},
                },
            }
            created = self.http.post("/v1/collections", json=body)
            assert created.status_code == 200, created.text
            self.collections.append(str(created.json()["collection_id"]))
            source = {"type": "collection", "collection_ids": [self.collections[-1]]}
        self.objects = []
        for text in TEXTS:
            blob = {"property": "content", "type": "text", "data": text}
            self.objects.append(
                str(self.http.post("/v1/buckets/docs/objects", json={"blobs": [blob]}).json()["object_id"])
            )

    def documents(self, tier: int) -> list[dict[str, Any]]:
        body = self.http.post(f"/v1/collections/{self.collections[tier]}/documents/list?limit=1000", json={}).json()
        return list(body["results"])

    def delete_document(self, tier: int, document_id: str) -> None:
        self.http.delete(f"/v1/collections/{self.collections[tier]}/documents/{document_id}").raise_for_status()

    def blob_path(self, server: LiveServer, object_id: str) -> Any:
        key = self.http.get(f"/v1/buckets/docs/objects/{object_id}").json()["blobs"][0]["properties"]["key"]
        return server.data_dir / "blobs" / key


def _lineage(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["_internal"]["lineage"])


def test_three_tiers_retried_tier_by_tier_audited_and_healed(sdk: mixpeek.ApiClient, live_server: LiveServer) -> None:
    world = World(live_server)
    use_namespace(sdk, "tiers")
    api = BucketBatchesApi(sdk)
    good, other, lost = world.objects
    blob = world.blob_path(live_server, lost)
    saved = blob.read_bytes()
    blob.unlink()  # its bytes vanish: tier 0 fails that row

    batch = api.create_batch_buckets_batches(world.bucket_id, CreateBatchRequest(object_ids=world.objects))
    batch_id = str(batch.batch_id)
    task = api.submit_batch_buckets_batches(world.bucket_id, batch_id)
    assert _wait(sdk, task.task_id) == "COMPLETED_WITH_ERRORS"
    first = api.get_batch_buckets_batches(world.bucket_id, batch_id)
    assert [t.status.value for t in first.tier_tasks] == ["COMPLETED_WITH_ERRORS", "COMPLETED", "COMPLETED"]
    audit = api.get_batch_audit_buckets_batches(world.bucket_id, batch_id)
    assert audit["has_lost_objects"] is False
    assert [(r["object_id"], r["reason"]) for r in audit["rows"]] == [(lost, "failed")]

    # Bad tier requests: a clear 4xx, nothing changes.
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        api.retry_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 3)
    with pytest.raises(mixpeek.exceptions.ConflictException):
        api.cancel_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 1)  # finished
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        api.cancel_job_buckets_batches_batch_id_tiers_num_ray(world.bucket_id, batch_id, 0, "raysubmit_other")
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        api.heal_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 0, HealBody(action="rewind"))
    nothing = api.retry_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 1)  # tier 1 has no failures
    assert nothing["retried_count"] == 0 and nothing["task_id"] == task.task_id
    unchanged = api.get_batch_buckets_batches(world.bucket_id, batch_id)
    assert unchanged.status.value == "COMPLETED_WITH_ERRORS" and unchanged.task_id == task.task_id

    # Tier 0 again, once its storage is fixed: the failed row, then tiers 1 and 2 for that object.
    blob.write_bytes(saved)
    retried = api.retry_tier_buckets_batches_batch_id_num(
        world.bucket_id, batch_id, 0, request_body={"memory_mb": 4096}
    )
    assert retried["retried_count"] == 1 and retried["mode"] == "failed_rows" and retried["warnings"]
    assert _wait(sdk, retried["task_id"]) == "COMPLETED"
    done = api.get_batch_buckets_batches(world.bucket_id, batch_id)
    assert done.status.value == "COMPLETED" and [t.status.value for t in done.tier_tasks] == ["COMPLETED"] * 3
    for tier in range(3):
        assert {_lineage(d)["root_object_id"] for d in world.documents(tier)} == set(world.objects)
    clean = api.get_batch_audit_buckets_batches(world.bucket_id, batch_id)
    assert clean["gap_count"] == 0 and all(t["orphaned_documents"] == 0 for t in clean["tiers"])

    # Documents removed by hand: tier 1's of one object (rows without documents), and one of tier 0's
    # documents of another (its tier-1 documents now have no source).
    removed = [d for d in world.documents(1) if _lineage(d)["root_object_id"] == good]
    for doc in removed:
        world.delete_document(1, doc["document_id"])
    gone_source = next(d for d in world.documents(0) if _lineage(d)["root_object_id"] == other)
    world.delete_document(0, gone_source["document_id"])
    orphans = {
        d["document_id"] for d in world.documents(1) if _lineage(d)["source_document_id"] == gone_source["document_id"]
    }
    assert orphans

    found = api.get_batch_audit_buckets_batches(world.bucket_id, batch_id)
    missing_rows = {r["document_id"] for r in found["rows"] if r["reason"] == "lost"}
    assert missing_rows == {_lineage(d)["source_document_id"] for d in removed}  # exactly the missing ones
    assert found["lost_object_ids"] == [good]
    assert found["tiers"][1]["orphaned_documents"] == len(orphans)

    healed = api.heal_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 1, HealBody(action="sync_status"))
    assert healed["rows_requeued"] == len(missing_rows) and healed["documents_removed"] == len(orphans)
    assert _wait(sdk, healed["task_id"]) == "COMPLETED"
    ids_now = {d["document_id"] for d in world.documents(1)}
    assert {d["document_id"] for d in removed} <= ids_now and not orphans & ids_now
    # Tier 2 re-ran for the healed object; its documents made from the orphans are orphans in turn.
    tier2 = api.heal_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 2, HealBody(action="sync_status"))
    assert tier2["rows_requeued"] == 0 and tier2["documents_removed"] > 0
    final = api.get_batch_audit_buckets_batches(world.bucket_id, batch_id)
    assert final["has_lost_objects"] is False and all(t["orphaned_documents"] == 0 for t in final["tiers"])
    again = api.heal_tier_buckets_batches_batch_id_num(world.bucket_id, batch_id, 1, HealBody(action="sync_status"))
    assert again["rows_requeued"] == 0 and again["documents_removed"] == 0 and again["task_id"] is None
    assert api.get_batch_buckets_batches(world.bucket_id, batch_id).status.value == "COMPLETED"


def _batch_task(api: BucketBatchesApi, bucket_id: str, batch_id: str) -> str:
    return str(api.get_batch_buckets_batches(bucket_id, batch_id).task_id)


def test_across_buckets_lifecycle_and_understanding(sdk: mixpeek.ApiClient, live_server: LiveServer) -> None:
    world = World(live_server, namespace="ops", tiers=1)
    use_namespace(sdk, "ops")
    api, every = BucketBatchesApi(sdk), BatchesApi(sdk)
    collection = world.collections[0]

    # A whole bucket in chunks of two: two batches, each queued and run.
    bulk = api.bulk_submit_batches_buckets(world.bucket_id, BulkSubmitBatchesRequest(chunk_size=2))
    assert (bulk.total_objects, bulk.total_batches, bulk.submitted, bulk.failed) == (3, 2, 2, 0)
    assert [b.object_count for b in bulk.batches] == [2, 1]
    # Each batch is in the queue when the answer is built, unless a worker already took it.
    queued = [b.queue_position for b in bulk.batches if b.queue_position is not None]
    assert queued == sorted(set(queued)) and all(p >= 1 for p in queued), bulk.batches
    for entry in bulk.batches:
        assert _wait(sdk, _batch_task(api, world.bucket_id, entry.batch_id)) == "COMPLETED"

    # Across buckets: filters, pagination by cursor, one by id, the namespace check.
    first = every.list_all_batches(ListBatchesRequest(bucket_id=world.bucket_id, limit=1))
    assert first.total_count == 2 and first.pagination["next_cursor"]
    second = every.list_all_batches(
        ListBatchesRequest(bucket_id=world.bucket_id, limit=1, cursor=first.pagination["next_cursor"])
    )
    assert {first.results[0].batch_id, second.results[0].batch_id} == {b.batch_id for b in bulk.batches}
    by_collection = every.list_all_batches(ListBatchesRequest(collection_id=collection, status="COMPLETED"))
    assert by_collection.total_count == 2 and all(b.namespace_id for b in by_collection.results)
    assert every.list_all_batches(ListBatchesRequest(collection_id="col_absent0000")).total_count == 0
    # The SDK's BatchesApi sends no X-Namespace: the organization-wide view, narrowed by the body.
    assert every.list_all_batches(ListBatchesRequest(namespace_id="ops")).total_count == 2
    world.http.post("/v1/namespaces", json={"namespace_name": "ops_other", "feature_extractors": []})
    assert every.list_all_batches(ListBatchesRequest(namespace_id="ops_other")).total_count == 0
    conflict = world.http.post("/v1/batches/list", json={"namespace_id": "ops_other"})  # X-Namespace says "ops"
    assert conflict.status_code == 400 and conflict.json()["success"] is False
    one = every.get_batch_by_id_batches(bulk.batches[0].batch_id)
    assert one.bucket_id == world.bucket_id and one.status.value == "COMPLETED"
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        every.get_batch_by_id_batches("btch_nosuchbatch")
    finished = every.cancel_batch_by_id_batches(bulk.batches[0].batch_id)  # finished: its task, unchanged
    assert finished.status.value == "COMPLETED"
    queue = every.get_queue_status_batches()
    assert queue["waiting"] == [] and queue["running"] == []
    assert queue["throughput"]["rows_per_second"] > 0 and queue["throughput"]["measured_tiers"] >= 2

    # Understanding: a pre-flight estimate from the measured rate, a diagnosis of a finished batch.
    draft = api.create_batch_buckets_batches(world.bucket_id, CreateBatchRequest(object_ids=world.objects))
    raw = api.estimate_batch_cost_buckets_batches_with_http_info(world.bucket_id, draft.batch_id)
    estimate = json.loads(raw.raw_data)
    assert raw.data.object_count == 3 and raw.data.already_extracted_count == 3
    assert estimate["tiers"][0]["collections"][0]["rows"] == 3 and estimate["expected_documents"] > 0
    assert estimate["cpu_seconds"] > 0 and estimate["wall_seconds"] > 0 and not estimate["warnings"]
    diagnosis = api.diagnose_batch_buckets_batches(world.bucket_id, bulk.batches[0].batch_id)
    assert diagnosis["health"] == "healthy" and diagnosis["problems"] == []

    # Lifecycle: resubmitting a draft is refused; submit-all; a resubmit is a new run; documents removed.
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        api.resubmit_batch_buckets_batches(world.bucket_id, draft.batch_id)
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        api.delete_batch_documents_buckets_batches(world.bucket_id, draft.batch_id)
    submitted = api.submit_all_drafts_buckets_batches(world.bucket_id)
    assert (submitted["total"], submitted["submitted"]) == (1, 1)
    old_task = _batch_task(api, world.bucket_id, draft.batch_id)
    assert _wait(sdk, old_task) == "COMPLETED"
    again = api.resubmit_batch_buckets_batches(world.bucket_id, draft.batch_id)
    assert again["task_id"] != old_task and again["previous_task_id"] == old_task
    assert _wait(sdk, again["task_id"]) == "COMPLETED" and _wait(sdk, old_task) == "COMPLETED"
    assert len(world.documents(0)) == 6  # the same documents, written again

    removal = api.delete_batch_documents_buckets_batches(world.bucket_id, bulk.batches[0].batch_id)
    assert removal["task_type"] == "api_collections_documents_bulk_delete"
    assert _wait(sdk, removal["task_id"]) == "COMPLETED"
    left = {_lineage(d)["root_object_id"] for d in world.documents(0)}
    assert left == {world.objects[2]}  # the first batch's two objects have no documents any more
