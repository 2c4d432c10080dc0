"""Submitted batches: tiers advance, documents carry lineage, failures are reported and retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import assert_error, wait_task

TEXT = "Cats purr softly. Dogs bark loudly. Birds sing at dawn."


def _pipeline(client: TestClient, model: str = "wordllama") -> tuple[str, dict[str, Any], dict[str, Any]]:
    bucket_id = make_bucket(client)
    chunks = text_collection(
        client,
        "sentences",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model=model,
    )
    words = text_collection(
        client,
        "word_pairs",
        {"type": "collection", "collection_ids": [chunks["collection_id"]]},
        mapping="text",
        split_by="words",
        chunk_size=2,
        model=model,
    )
    return bucket_id, chunks, words


def _submit(client: TestClient, object_ids: list[str]) -> tuple[str, dict[str, Any]]:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
    assert task.status_code == 200, task.text
    return batch["batch_id"], task.json()


def _batch(client: TestClient, batch_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/buckets/docs/batches/{batch_id}").json())


def _documents(client: TestClient, collection_id: str) -> list[dict[str, Any]]:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return list(body["results"])


def test_two_tier_pipeline_with_lineage(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id, chunks, words = _pipeline(client, model="minilm")
    object_ids = [add_object(client, TEXT, title=f"note {i}") for i in range(3)]
    batch_id, task = _submit(client, object_ids)
    assert task["task_type"] == "api_buckets_batches_process" and task["status"] == "PENDING"
    assert task["additional_data"]["total_tiers"] == 2 and task["additional_data"]["object_count"] == 3
    assert wait_task(client, task["task_id"], timeout=120)["status"] == "COMPLETED"

    batch = _batch(client, batch_id)
    assert batch["status"] == "COMPLETED" and batch["current_tier"] == 1 and batch["total_tiers"] == 2
    assert batch["dag_tiers"] == [[chunks["collection_id"]], [words["collection_id"]]]
    assert batch["collection_ids"] == [chunks["collection_id"], words["collection_id"]]
    assert batch["manifest_key"].endswith("tier_0.parquet") and batch["loaded_object_ids"] == object_ids
    first, second = batch["tier_tasks"]
    assert (first["status"], first["source_type"], first["source_collection_ids"]) == ("COMPLETED", "bucket", None)
    assert (second["status"], second["source_type"]) == ("COMPLETED", "collection")
    assert second["source_collection_ids"] == [chunks["collection_id"]]
    assert second["parent_task_id"] == first["task_id"]
    assert first["source_documents_fetched"] == 3 and first["documents_written"] == 9
    assert second["source_documents_fetched"] == 9 and second["documents_written"] == 18
    assert first["documents_missing_input_fields"] == 0 and first["duration_ms"] > 0
    assert first["extractor_jobs"][0]["extractor_type"] == "text_extractor"
    for tier in (first, second):
        tier_task = client.get(f"/v1/tasks/{tier['task_id']}").json()
        assert tier_task["status"] == "COMPLETED" and tier_task["task_type"] == "engine_feature_extractor_run"
    progress = client.get(f"/v1/tasks/{task['task_id']}").json()["additional_data"]["progress"]
    assert progress["rows_done"] == progress["rows_total"] == 9

    leaves = _documents(client, words["collection_id"])
    assert len(leaves) == 18 and len({d["document_id"] for d in leaves}) == 18
    lineage = leaves[0]["_internal"]["lineage"]
    assert lineage["root_object_id"] in object_ids and lineage["root_bucket_id"] == bucket_id
    assert lineage["source_type"] == "collection" and lineage["source_collection_id"] == chunks["collection_id"]
    assert [step["collection_id"] for step in lineage["chain"]] == [chunks["collection_id"], words["collection_id"]]
    assert leaves[0]["title"].startswith("note ")


def test_resubmit_is_idempotent_and_reprocessing_does_not_duplicate(
    client: TestClient, namespace: dict[str, Any]
) -> None:
    _, chunks, _ = _pipeline(client)
    object_ids = [add_object(client, TEXT) for _ in range(2)]
    batch_id, task = _submit(client, object_ids)
    again = client.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json={}).json()
    assert again["task_id"] == task["task_id"]
    wait_task(client, task["task_id"], timeout=60)
    assert len(_documents(client, chunks["collection_id"])) == 6
    _, second = _submit(client, object_ids)  # the same objects again, in a new batch
    assert wait_task(client, second["task_id"], timeout=60)["status"] == "COMPLETED"
    assert len(_documents(client, chunks["collection_id"])) == 6  # overwritten, not doubled


def test_failures_are_reported_then_retried(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    _, chunks, _ = _pipeline(client)
    good = add_object(client, TEXT)
    lost = add_object(client, TEXT)
    empty = client.post("/v1/buckets/docs/objects", json={"blobs": [], "metadata": {"title": "no text"}}).json()
    blob_key = client.get(f"/v1/buckets/docs/objects/{lost}").json()["blobs"][0]["properties"]["key"]
    blob_path: Path = runtime.blobs.path(blob_key)
    saved = blob_path.read_bytes()
    blob_path.unlink()  # the bytes vanish from storage: that row must fail, the rest must not

    batch_id, task = _submit(client, [good, lost, empty["object_id"]])
    assert wait_task(client, task["task_id"], timeout=60)["status"] == "COMPLETED_WITH_ERRORS"
    batch = _batch(client, batch_id)
    assert batch["status"] == "COMPLETED_WITH_ERRORS"
    assert batch["error_summary"] == {"dependency": 1}
    tier0 = batch["tier_tasks"][0]
    assert tier0["status"] == "COMPLETED_WITH_ERRORS"
    # The object without text is not this collection's work: counted, not failed.
    assert (
        tier0["source_documents_fetched"],
        tier0["documents_missing_input_fields"],
        tier0["documents_submitted_to_engine"],
    ) == (3, 1, 2)
    assert [e["error_type"] for e in tier0["errors"]] == ["dependency"]
    failed = client.get(f"/v1/buckets/docs/batches/{batch_id}/failed-documents?tier_num=0").json()
    assert failed["total"] == 1
    only = failed["results"][0]
    assert only["object_id"] == lost and "missing from storage" in only["error_message"]
    assert only["retry_count"] == 0 and only["collection_id"] == chunks["collection_id"]
    assert only["is_transient"] is False

    nothing = client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={}).json()  # not transient
    assert (nothing["retried_count"], nothing["skipped_count"]) == (0, 1)
    assert _batch(client, batch_id)["status"] == "COMPLETED_WITH_ERRORS"
    capped = client.post(
        f"/v1/buckets/docs/batches/{batch_id}/retry", json={"retry_mode": "all", "max_retry_count": 1, "tier_nums": [0]}
    ).json()
    assert capped["retried_count"] == 1  # the first retry is allowed; the blob is still missing
    assert wait_task(client, capped["task_id"], timeout=60)["status"] == "COMPLETED_WITH_ERRORS"
    again = client.get(f"/v1/buckets/docs/batches/{batch_id}/failed-documents").json()["results"]
    assert [(f["object_id"], f["retry_count"]) for f in again] == [(lost, 1)]
    refused = client.post(
        f"/v1/buckets/docs/batches/{batch_id}/retry", json={"retry_mode": "all", "max_retry_count": 1}
    ).json()
    assert (refused["retried_count"], refused["skipped_count"]) == (0, 1)  # the cap is reached

    blob_path.write_bytes(saved)  # the storage problem is fixed
    retry = client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={"retry_mode": "all", "tier_nums": [0]})
    assert retry.status_code == 200, retry.text
    body = retry.json()
    assert (body["retried_count"], body["skipped_count"]) == (1, 0) and body["task_id"] != task["task_id"]
    assert wait_task(client, body["task_id"], timeout=60)["status"] == "COMPLETED"
    assert _batch(client, batch_id)["status"] == "COMPLETED"
    assert client.get(f"/v1/buckets/docs/batches/{batch_id}/failed-documents").json()["total"] == 0
    documents = _documents(client, chunks["collection_id"])
    assert {d["_internal"]["lineage"]["root_object_id"] for d in documents} == {good, lost}
    assert len(documents) == 6
    logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs?tier_num=0").json()
    assert logs["tiers"][0]["logs"] and "rows" in logs["tiers"][0]["logs"][0]


def test_cancel_stops_the_batch_for_good(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    _pipeline(client)
    object_ids = [add_object(client, TEXT) for _ in range(3)]
    runtime.stop_background()  # hold the scheduler so the batch is still pending when canceled
    batch_id, task = _submit(client, object_ids)
    canceled = client.post(f"/v1/buckets/docs/batches/{batch_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED"
    runtime.start_background()
    assert runtime.scheduler.run_pending() == 0  # nothing to run: pending tiers never start
    batch = _batch(client, batch_id)
    assert batch["status"] == "CANCELED" and [t["status"] for t in batch["tier_tasks"]] == ["CANCELED", "CANCELED"]
    assert client.get(f"/v1/tasks/{batch['tier_tasks'][0]['task_id']}").json()["status"] == "CANCELED"
    again = client.post(f"/v1/buckets/docs/batches/{batch_id}/cancel").json()
    assert again["task_id"] == task["task_id"] and again["status"] == "CANCELED"
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={}), 400)
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch_id}/objects", json={"object_ids": object_ids}), 400)
    assert client.delete(f"/v1/buckets/docs/batches/{batch_id}").status_code == 200


def test_killing_the_batch_task_cancels_the_batch(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    _pipeline(client)
    runtime.stop_background()
    batch_id, task = _submit(client, [add_object(client, TEXT)])
    assert client.delete(f"/v1/tasks/{task['task_id']}").json()["success"] is True
    assert _batch(client, batch_id)["status"] == "CANCELED"


def test_bad_submissions(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    object_id = add_object(client, TEXT)
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [object_id]}).json()
    body = assert_error(client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}), 400)
    assert "No enabled collection" in body["error"]["message"]
    assert _batch(client, batch["batch_id"])["status"] == "DRAFT"
    assert_error(client.post("/v1/buckets/docs/batches/btch_nope/submit", json={}), 404)
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/cancel"), 400)
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/retry", json={}), 400)


def test_retry_of_a_running_batch_is_refused(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    _pipeline(client)
    runtime.stop_background()
    batch_id, _ = _submit(client, [add_object(client, TEXT)])
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={}), 409)
    assert_error(client.delete(f"/v1/buckets/docs/batches/{batch_id}"), 409)
    assert_error(client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={"tier_nums": [7]}), 409)


@pytest.mark.parametrize("deleted_before_submit", [True])
def test_objects_deleted_after_adding_fail_alone(
    client: TestClient, namespace: dict[str, Any], deleted_before_submit: bool
) -> None:
    _, chunks, _ = _pipeline(client)
    keep, drop = add_object(client, TEXT), add_object(client, TEXT)
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [keep, drop]}).json()
    client.delete(f"/v1/buckets/docs/objects/{drop}")
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    assert wait_task(client, task["task_id"], timeout=60)["status"] == "COMPLETED_WITH_ERRORS"
    failed = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}/failed-documents").json()
    assert [(f["object_id"], f["error_type"]) for f in failed["results"]] == [(drop, "validation")]
    assert {d["_internal"]["lineage"]["root_object_id"] for d in _documents(client, chunks["collection_id"])} == {keep}
