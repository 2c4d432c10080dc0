"""Tier operations with the scheduler held, so each tier runs exactly when the test says:
cancel tier 2 while tier 1 runs, bad tier requests change nothing, a canceled tier is retried."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.engine.scheduler import Scheduler
from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import assert_error, wait_task

TEXT = "Cats purr softly. Dogs bark loudly."


def _three_tiers(client: TestClient) -> list[str]:
    bucket_id = make_bucket(client)
    first = text_collection(
        client, "sentences", {"type": "bucket", "bucket_ids": [bucket_id]}, split_by="sentences", chunk_size=1
    )
    second = text_collection(
        client,
        "pairs",
        {"type": "collection", "collection_ids": [first["collection_id"]]},
        mapping="text",
        split_by="words",
        chunk_size=2,
    )
    third = text_collection(
        client,
        "words",
        {"type": "collection", "collection_ids": [second["collection_id"]]},
        mapping="text",
        split_by="words",
        chunk_size=1,
    )
    return [first["collection_id"], second["collection_id"], third["collection_id"]]


def _count(client: TestClient, collection_id: str) -> int:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return len(body["results"])


def _batch(client: TestClient, batch_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/buckets/docs/batches/{batch_id}").json())


def test_cancel_tier_two_while_tier_one_runs_then_retry_it(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    collections = _three_tiers(client)
    objects = [add_object(client, TEXT, title=f"t{i}") for i in range(2)]
    runtime.stop_background()  # the test runs each tier itself
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": objects}).json()
    batch_id = batch["batch_id"]
    base = f"/v1/buckets/docs/batches/{batch_id}"
    assert_error(client.post(f"{base}/tiers/0/cancel"), 400)  # a draft has no tiers
    task = client.post(f"{base}/submit", json={}).json()

    scheduler = Scheduler(runtime.db, runtime.scheduler.executor, lease_s=30)  # a worker of the test's own
    tier0 = scheduler.claim()
    assert tier0 is not None and tier0.tier_num == 0
    scheduler.run(tier0)
    tier1 = scheduler.claim()  # tier 1 is running (claimed, under its lease)
    assert tier1 is not None and tier1.tier_num == 1

    # Bad requests while tier 1 runs: each is refused and nothing changes.
    before = _batch(client, batch_id)
    assert_error(client.post(f"{base}/tiers/3/cancel"), 400)
    assert_error(client.post(f"{base}/tiers/0/cancel"), 409)  # finished
    assert_error(client.post(f"{base}/tiers/1/retry", json={}), 409)  # the batch is running
    assert_error(client.post(f"{base}/tiers/1/jobs/raysubmit_nope/cancel"), 400)
    assert_error(client.post(f"{base}/tiers/1/heal", json={"action": "sync_status"}), 409)
    assert_error(client.post(f"{base}/tiers/1/heal", json={"action": "explode"}), 400)
    assert_error(client.post(f"{base}/tiers/1/retry", json={"retry_mode": "sometimes"}), 400)
    after = _batch(client, batch_id)
    assert [t["status"] for t in after["tier_tasks"]] == [t["status"] for t in before["tier_tasks"]]
    assert after["status"] == "IN_PROGRESS" and after["task_id"] == before["task_id"]

    stuck = client.post(f"{base}/tiers/1/heal", json={"action": "detect_stuck"}).json()
    assert stuck["stuck"] is False and stuck["tier_status"] == "IN_PROGRESS" and stuck["holder"]

    canceled = client.post(f"{base}/tiers/2/cancel", params={"reason": "not needed"})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["canceled_tiers"] == [2]
    again = client.post(f"{base}/tiers/2/cancel").json()  # idempotent
    assert again["canceled_tiers"] == [] and again["tier_status"] == "CANCELED"
    running = _batch(client, batch_id)
    assert running["status"] == "IN_PROGRESS"
    assert [t["status"] for t in running["tier_tasks"]] == ["COMPLETED", "IN_PROGRESS", "CANCELED"]
    assert client.get(f"/v1/tasks/{running['tier_tasks'][2]['task_id'] or task['task_id']}").status_code == 200

    scheduler.run(tier1)  # tier 1 finishes; tier 2 never starts, the batch ends there
    assert scheduler.claim() is None
    ended = _batch(client, batch_id)
    assert ended["status"] == "CANCELED"
    assert [t["status"] for t in ended["tier_tasks"]] == ["COMPLETED", "COMPLETED", "CANCELED"]
    assert client.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "CANCELED"
    assert _count(client, collections[0]) == 4 and _count(client, collections[1]) > 0
    assert _count(client, collections[2]) == 0  # earlier tiers' documents stay; tier 2 wrote none

    assert_error(client.post(f"{base}/tiers/1/cancel"), 409)  # finished
    retried = client.post(f"{base}/tiers/2/retry", json={})
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["mode"] == "full" and body["task_id"] != task["task_id"]
    runtime.start_background()
    assert wait_task(client, body["task_id"], timeout=60)["status"] == "COMPLETED"
    done = _batch(client, batch_id)
    assert done["status"] == "COMPLETED" and [t["status"] for t in done["tier_tasks"]] == ["COMPLETED"] * 3
    assert _count(client, collections[2]) > 0
    assert client.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "CANCELED"  # the old run's task stays
    nothing = client.post(f"{base}/tiers/0/retry", json={}).json()
    assert nothing["retried_count"] == 0 and nothing["mode"] == "none"


def test_job_cancel_names_the_tier_job(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    _three_tiers(client)
    runtime.stop_background()
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [add_object(client, TEXT)]}).json()
    base = f"/v1/buckets/docs/batches/{batch['batch_id']}"
    client.post(f"{base}/submit", json={})
    tier0 = _batch(client, batch["batch_id"])["tier_tasks"][0]
    assert_error(client.post(f"{base}/tiers/0/jobs/{tier0['task_id']}x/cancel"), 400)
    answer = client.post(f"{base}/tiers/0/jobs/{tier0['task_id']}/cancel").json()
    assert answer["canceled_tiers"] == [0, 1, 2] and answer["batch_status"] == "CANCELED"
    assert runtime.scheduler.claim() is None


def test_queue_positions_then_resubmit_from_a_tier(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    _three_tiers(client)
    runtime.stop_background()  # both batches wait for a worker
    batch_ids, tasks = [], []
    for text in (TEXT, "Owls hoot at night."):
        batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [add_object(client, text)]}).json()
        tasks.append(client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()["task_id"])
        batch_ids.append(batch["batch_id"])
    queue = client.get("/v1/batches/queue").json()
    assert [(w["batch_id"], w["position"], w["batches_ahead"]) for w in queue["waiting"]] == [
        (batch_ids[0], 1, 0),
        (batch_ids[1], 2, 1),
    ]
    assert queue["running"] == [] and queue["throughput"] is None  # nothing measured yet: no made-up estimate
    assert all(w["estimated_wait_seconds"] is None for w in queue["waiting"])
    listed = client.post(
        "/v1/batches/list", json={"status": "PENDING", "sort_by": "created_at", "sort_direction": "asc"}
    )
    assert [b["batch_id"] for b in listed.json()["results"]] == batch_ids
    first_collection = _batch(client, batch_ids[0])["collection_ids"][0]
    assert client.post("/v1/batches/list", json={"collection_id": first_collection}).json()["total_count"] == 2
    assert client.post("/v1/batches/list", json={"collection_id": first_collection[:-1]}).json()["total_count"] == 0
    client.post("/v1/namespaces", json={"namespace_name": "elsewhere", "feature_extractors": []})
    other = client.get("/v1/batches/queue", headers={"X-Namespace": "elsewhere"}).json()
    assert other["waiting"] == [] and other["counts"]["waiting_all_tenants"] == 2  # counted, never named
    assert_error(client.get(f"/v1/batches/{batch_ids[0]}", headers={"X-Namespace": "elsewhere"}), 404)
    second = client.get(f"/v1/batches/{batch_ids[1]}").json()
    assert second["queue_context"]["batches_ahead"] == 1 and second["status_message"] == "Queued: waiting for a worker"

    runtime.start_background()
    for task_id in tasks:
        assert wait_task(client, task_id, timeout=60)["status"] == "COMPLETED"
    measured = client.get("/v1/batches/queue").json()["throughput"]
    assert measured is not None and measured["rows_per_second"] > 0

    base = f"/v1/buckets/docs/batches/{batch_ids[0]}"
    before = _batch(client, batch_ids[0])
    assert_error(client.post(f"{base}/resubmit", params={"from_tier": 5}), 400)
    again = client.post(f"{base}/resubmit", params={"from_tier": 2})
    assert again.status_code == 200, again.text
    assert again.json()["previous_task_id"] == tasks[0] and again.json()["task_id"] != tasks[0]
    assert wait_task(client, again.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    after = _batch(client, batch_ids[0])
    assert [t["task_id"] for t in after["tier_tasks"][:2]] == [t["task_id"] for t in before["tier_tasks"][:2]]
    assert after["tier_tasks"][2]["task_id"] != before["tier_tasks"][2]["task_id"]  # tier 2 ran again
    parked = client.post(f"{base}/resubmit", json={"auto_submit": False}).json()
    assert parked["status"] == "DRAFT" and _batch(client, batch_ids[0])["tier_tasks"] == []
    resumed = client.post(f"{base}/submit", json={}).json()
    assert wait_task(client, resumed["task_id"], timeout=60)["status"] == "COMPLETED"


@pytest.mark.parametrize("backend", ["sqlite"])  # service logic over rows the tier tests write on both databases
def test_diagnose_audit_and_estimate_explain_a_batch(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    bucket_id = make_bucket(client)
    text_collection(client, "sentences", {"type": "bucket", "bucket_ids": [bucket_id]}, split_by="sentences")
    titles = text_collection(client, "titles", {"type": "bucket", "bucket_ids": [bucket_id]}, mapping="title")
    objects = [add_object(client, TEXT) for _ in range(2)]  # no title: the second collection has no input
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": objects}).json()
    base = f"/v1/buckets/docs/batches/{batch['batch_id']}"
    cold = client.post(f"{base}/estimate-cost").json()
    assert cold["object_count"] == 2 and cold["already_extracted_count"] == 0
    assert cold["warnings"] and cold["cpu_seconds"] == 0  # nothing measured yet: said, not guessed
    blob_key = client.get(f"/v1/buckets/docs/objects/{objects[1]}").json()["blobs"][0]["properties"]["key"]
    runtime.blobs.path(blob_key).unlink()
    task = client.post(f"{base}/submit", json={}).json()
    assert wait_task(client, task["task_id"], timeout=60)["status"] == "COMPLETED_WITH_ERRORS"

    diagnosis = client.get(f"{base}/diagnose").json()
    kinds = {p["kind"]: p for p in diagnosis["problems"]}
    assert kinds["missing_blobs"]["object_ids"] == [objects[1]]
    assert kinds["misconfigured_mapping"]["collection_id"] == titles["collection_id"]
    assert diagnosis["health"] == "needs_attention" and diagnosis["failed_document_count"] == 1

    audit = client.get(f"{base}/audit").json()
    by_collection = {c["collection_id"]: c for c in audit["tiers"][0]["collections"]}
    assert by_collection[titles["collection_id"]]["no_input"] == 2 and audit["has_lost_objects"] is False
    assert {(r["object_id"], r["reason"]) for r in audit["rows"]} == {
        (objects[0], "no_input"),
        (objects[1], "no_input"),
        (objects[1], "failed"),
    }
    warm = client.post(f"{base}/estimate-cost").json()
    assert warm["cpu_seconds"] > 0 and warm["expected_documents"] > 0 and warm["already_extracted_count"] == 0


def test_bucket_batch_list_filters_and_cursor(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    bucket_id = make_bucket(client)
    source = {"type": "bucket", "bucket_ids": [bucket_id]}
    first, second = (text_collection(client, name, source)["collection_id"] for name in ("first", "second"))
    runtime.stop_background()
    ids = {}
    for scope in ([first], [second], [first, second]):
        body = {"object_ids": [add_object(client, TEXT)], "collection_ids": scope}
        batch = client.post("/v1/buckets/docs/batches", json=body).json()
        client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
        ids[tuple(scope)] = batch["batch_id"]

    def listed(**body: Any) -> list[str]:
        response = client.post("/v1/buckets/docs/batches/list", json=body)
        assert response.status_code == 200, response.text
        return sorted(b["batch_id"] for b in response.json()["results"])

    assert listed(collection_id=first) == sorted([ids[(first,)], ids[(first, second)]])
    assert listed(collection_id=second) == sorted([ids[(second,)], ids[(first, second)]])
    assert listed(collection_id=first[:-1]) == []
    assert len(listed(bucket_id=bucket_id)) == len(listed(bucket_id="docs")) == 3
    make_bucket(client, "other")
    assert listed(bucket_id="other") == []  # another bucket than the path's: nothing, never a wider scope
    assert len(listed(namespace_id=namespace["namespace_id"])) == 3
    client.post("/v1/namespaces", json={"namespace_name": "elsewhere", "feature_extractors": []})
    assert_error(client.post("/v1/buckets/docs/batches/list", json={"namespace_id": "elsewhere"}), 400)
    page = client.post("/v1/buckets/docs/batches/list", json={"limit": 2}).json()
    assert len(page["results"]) == 2 and page["pagination"]["has_more"] is True
    rest = client.post("/v1/buckets/docs/batches/list", json={"limit": 2, "cursor": page["pagination"]["next_cursor"]})
    assert len(rest.json()["results"]) == 1 and rest.json()["pagination"]["next_cursor"] is None
    seen = {b["batch_id"] for b in page["results"] + rest.json()["results"]}
    assert seen == set(ids.values())
    runtime.start_background()
