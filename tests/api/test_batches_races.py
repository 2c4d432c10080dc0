"""Racing requests on one batch resolve to one consistent outcome."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from strataflow.store.tables import BatchTier, Task
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import wait_task

TEXT = "One sentence here. Another sentence there."


def _setup(client: TestClient) -> list[str]:
    bucket_id = make_bucket(client)
    text_collection(
        client,
        "chunks",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    return [add_object(client, TEXT) for _ in range(4)]


def test_concurrent_submits_queue_the_batch_once(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    object_ids = _setup(client)
    batch_id = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()["batch_id"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: client.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json={}), range(4))
        )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["task_id"] for a in answers}) == 1
    wait_task(client, answers[0].json()["task_id"], timeout=60)
    with runtime.db.read_session() as session:
        tiers = session.scalar(select(func.count()).where(BatchTier.batch_id == batch_id))
        batch_tasks = session.scalar(select(func.count()).where(Task.task_type == "api_buckets_batches_process"))
    assert (tiers, batch_tasks) == (1, 1)


def test_add_objects_racing_submit(client: TestClient, namespace: dict[str, Any]) -> None:
    object_ids = _setup(client)
    late = add_object(client, TEXT)
    batch_id = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()["batch_id"]
    with ThreadPoolExecutor(2) as pool:
        add = pool.submit(client.post, f"/v1/buckets/docs/batches/{batch_id}/objects", json={"object_ids": [late]})
        submit = pool.submit(client.post, f"/v1/buckets/docs/batches/{batch_id}/submit", json={})
        added, submitted = add.result(), submit.result()
    assert submitted.status_code == 200
    wait_task(client, submitted.json()["task_id"], timeout=60)
    batch = client.get(f"/v1/buckets/docs/batches/{batch_id}").json()
    processed = batch["tier_tasks"][0]["source_documents_fetched"]
    if added.status_code == 200:  # the add won: the object is a member and was processed
        assert late in batch["object_ids"] and processed == 5
    else:  # the submit won: the add was refused and the batch is untouched
        assert added.status_code == 400 and late not in batch["object_ids"] and processed == 4


def test_cancel_racing_completion_ends_in_one_state(client: TestClient, namespace: dict[str, Any]) -> None:
    object_ids = _setup(client)
    batch_id = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()["batch_id"]
    task = client.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json={}).json()
    cancel = client.post(f"/v1/buckets/docs/batches/{batch_id}/cancel")
    final = wait_task(client, task["task_id"], timeout=60)["status"]
    assert cancel.status_code == 200 and final in ("CANCELED", "COMPLETED")
    batch = client.get(f"/v1/buckets/docs/batches/{batch_id}").json()
    assert batch["status"] == final
    tier = batch["tier_tasks"][0]
    assert client.get(f"/v1/tasks/{tier['task_id']}").json()["status"] == tier["status"]
    assert tier["status"] == ("CANCELED" if final == "CANCELED" else "COMPLETED")
    assert client.post(f"/v1/buckets/docs/batches/{batch_id}/cancel").json()["status"] == final
