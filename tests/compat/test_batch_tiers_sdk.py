"""Tier by tier through the SDK's BucketBatchesApi against a live server: a three-tier DAG whose
tier 0 loses a row, retried tier by tier; documents removed by hand, found by the audit
(exactly those) and healed; bad tier requests refused with nothing changed."""

from __future__ import annotations

import time
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek import BucketBatchesApi, TasksApi
from mixpeek.models import BodyHealTierV1BucketsBucketIdentifierBatchesBatchIdTiersTierNumHealPost as HealBody
from mixpeek.models import CreateBatchRequest

from tests.compat.conftest import use_namespace
from tests.live import API_KEY, LiveServer

pytestmark = pytest.mark.compat
TERMINAL = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")
TEXTS = ["Red fox runs. Blue bird sings.", "Green frog jumps. Gray owl hoots.", "Tall tree grows. Cold wind blows."]


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> str:
    for _ in range(1200):
        status = TasksApi(sdk).get_task(task_id).status.value
        if status in TERMINAL:
            return str(status)
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


class World:
    """Setup over plain HTTP (not what is under test): a namespace, a bucket, three chained collections."""

    def __init__(self, server: LiveServer) -> None:
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        self.http.post("/v1/namespaces", json={"namespace_name": "tiers", "feature_extractors": []}).raise_for_status()
        self.http.headers["X-Namespace"] = "tiers"
        schema = {"properties": {"content": {"type": "text"}}}
        bucket = self.http.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema})
        self.bucket_id = str(bucket.json()["bucket_id"])
        self.collections = []
        source: dict[str, Any] = {"type": "bucket", "bucket_ids": [self.bucket_id]}
        for name, mapping, split, size in (
            ("tier0", "content", "sentences", 1),
            ("tier1", "text", "words", 2),
            ("tier2", "text", "words", 1),
        ):
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
