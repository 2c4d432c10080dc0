"""The SDK's batch options, run to completion on SQLite and PostgreSQL: objects chosen by a filter
(and a limit), a collection scope, a batch name, the dedup strategy, the submit-time webhook
(a real receiver on loopback, allowed through the outbound guard) and the deprecated submit-time
collection_ids. Every refused input is the contract's error and creates nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from strataflow.services.batches import selection
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.events_receiver import Receiver
from tests.helpers import assert_error, wait_task

TEXT = "Cats purr softly. Dogs bark loudly."


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    """Loopback is refused unless allowed: allow this receiver alone, and poll often."""
    return settings.model_copy(update={"outbound_allow": receiver.url.split("/")[2], "events_poll_interval_s": 0.05})


def _collection(client: TestClient, name: str, source: dict[str, Any]) -> str:
    mapping = "content" if source["type"] == "bucket" else "text"
    body = text_collection(client, name, source, mapping=mapping, split_by="sentences", chunk_size=1)
    return str(body["collection_id"])


def _from_bucket(client: TestClient, name: str, bucket_id: str) -> str:
    return _collection(client, name, {"type": "bucket", "bucket_ids": [bucket_id]})


def _create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/buckets/docs/batches", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _run(client: TestClient, batch_id: str, **submit: Any) -> dict[str, Any]:
    task = client.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json=submit)
    assert task.status_code == 200, task.text
    assert wait_task(client, task.json()["task_id"], timeout=120)["status"] == "COMPLETED"
    return dict(client.get(f"/v1/buckets/docs/batches/{batch_id}").json())


def _roots(client: TestClient, collection_id: str) -> set[str]:
    """The source objects that have documents in the collection."""
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return {d["_internal"]["lineage"]["root_object_id"] for d in body["results"]}


def _count(client: TestClient, collection_id: str) -> int:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return len(body["results"])


def _batch_count(client: TestClient) -> int:
    return int(client.post("/v1/buckets/docs/batches/list", json={}).json()["total_count"])


def _tag(value: str) -> dict[str, Any]:
    return {"AND": [{"field": "metadata.tag", "operator": "eq", "value": value}]}


def test_filters_and_limit_pick_exactly_the_matching_objects(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    chunks = _from_bucket(client, "sentences", bucket_id)
    tags = ["a", "b", "a", "a", "b"]
    ids = [add_object(client, TEXT, tag=tag) for tag in tags]
    tagged_a = [o for o, tag in zip(ids, tags, strict=True) if tag == "a"]

    batch = _create(client, {"filters": _tag("a"), "batch_name": "only a"})
    assert batch["object_ids"] == tagged_a and batch["batch_name"] == "only a"
    capped = _create(client, {"filters": _tag("a"), "limit": 2})
    assert capped["object_ids"] == tagged_a[:2]  # oldest first

    done = _run(client, batch["batch_id"])
    assert done["status"] == "COMPLETED" and done["batch_name"] == "only a"
    assert _roots(client, chunks) == set(tagged_a)
    assert client.get(f"/v1/buckets/docs/batches/{capped['batch_id']}").json()["batch_name"] is None


def test_collection_scope_runs_only_the_scoped_collections_and_downstream(
    client: TestClient, namespace: dict[str, Any]
) -> None:
    bucket_id = make_bucket(client)
    first = _from_bucket(client, "first", bucket_id)
    other = _from_bucket(client, "other", bucket_id)
    after = _collection(client, "after", {"type": "collection", "collection_ids": [first]})
    ids = [add_object(client, TEXT) for _ in range(2)]

    batch = _create(client, {"object_ids": ids, "collection_ids": [first]})
    assert batch["collection_ids"] == [first, after]
    # The deprecated submit-time collection_ids must name the scope: another one fails closed.
    wrong = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={"collection_ids": [other]})
    assert_error(wrong, 400)
    assert client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["status"] == "DRAFT"

    done = _run(client, batch["batch_id"], collection_ids=[first])
    assert done["status"] == "COMPLETED" and done["dag_tiers"] == [[first], [after]]
    assert _roots(client, first) == set(ids) and _roots(client, after) == set(ids)
    assert _roots(client, other) == set()

    # A resubmit plans from the stored scope again.
    again = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/resubmit", json={})
    assert again.status_code == 200, again.text
    assert wait_task(client, again.json()["task_id"], timeout=120)["status"] == "COMPLETED"
    rerun = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()
    assert rerun["dag_tiers"] == [[first], [after]] and _roots(client, other) == set()

    # A scope naming a collection and one that reads it keeps them a tier apart.
    both = _create(client, {"object_ids": ids, "collections": [after, first]})
    assert both["collection_ids"] == [first, after]
    # At submit, the deprecated collection_ids may repeat the creation scope as given.
    done = _run(client, both["batch_id"], collection_ids=[first, after])
    assert done["dag_tiers"] == [[first], [after]] and _roots(client, other) == set()


def test_dedup_skip_leaves_out_objects_with_documents(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    chunks = _from_bucket(client, "sentences", bucket_id)
    ids = [add_object(client, TEXT) for _ in range(3)]
    assert _run(client, _create(client, {"object_ids": ids[:2]})["batch_id"])["status"] == "COMPLETED"

    skipping = _create(client, {"object_ids": ids, "dedup_strategy": "skip"})
    assert skipping["object_ids"] == [ids[2]] and skipping["dedup_strategy"] == "skip"
    audit = skipping["dedup_audit"][chunks]
    assert (audit["total_input"], audit["skipped"], audit["processed"]) == (3, 2, 1)
    assert audit["skipped_object_ids"] == ids[:2]
    assert _run(client, skipping["batch_id"])["status"] == "COMPLETED"
    assert _roots(client, chunks) == set(ids)

    forcing = _create(client, {"object_ids": ids, "dedup_strategy": "force"})
    assert forcing["object_ids"] == ids and forcing["dedup_audit"] is None
    assert forcing["documents_replaced"] is None
    # 'replace' reprocesses every object; its documents are replaced in place, never doubled.
    replacing = _run(client, _create(client, {"object_ids": ids, "dedup_strategy": "replace"})["batch_id"])
    assert replacing["object_ids"] == ids and replacing["dedup_strategy"] == "replace"
    assert replacing["documents_replaced"] == 6  # two sentences from each of three objects
    assert _count(client, chunks) == 6

    before = _batch_count(client)
    nothing_left = client.post("/v1/buckets/docs/batches", json={"object_ids": ids, "dedup_strategy": "skip"})
    assert assert_error(nothing_left, 400)["error"]["details"]["dedup_audit"][chunks]["skipped"] == 3
    assert _batch_count(client) == before


def test_bad_inputs_are_refused_and_create_nothing(
    client: TestClient, namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket_id = make_bucket(client)
    chunks = _from_bucket(client, "sentences", bucket_id)
    make_bucket(client, "elsewhere")
    foreign = _collection(client, "foreign", {"type": "bucket", "bucket_ids": [make_bucket(client, "third")]})
    ids = [add_object(client, TEXT, tag="a") for _ in range(4)]

    def refused(body: dict[str, Any], status: int) -> dict[str, Any]:
        return assert_error(client.post("/v1/buckets/docs/batches", json=body), status)

    refused({"object_ids": ids, "filters": _tag("a")}, 422)  # both
    refused({}, 422)  # neither
    refused({"object_ids": ids, "limit": 2}, 422)  # a limit caps a filter only
    refused({"filters": _tag("a"), "limit": 0}, 422)
    refused({"filters": _tag("a"), "limit": 50_001}, 422)
    refused({"object_ids": ids, "batch_name": "n" * 257}, 422)
    refused({"object_ids": ids, "dedup_strategy": "sometimes"}, 422)
    refused({"filters": _tag("zzz")}, 400)  # matches nothing
    refused({"filters": {"AND": [{"field": "metadata.tag", "operator": "like", "value": "a"}]}}, 400)
    unknown = refused({"object_ids": ids, "collection_ids": [chunks, "col_missing"]}, 404)
    assert unknown["error"]["details"]["collection_ids"] == ["col_missing"]
    unreachable = refused({"object_ids": ids, "collection_ids": [foreign]}, 400)
    assert unreachable["error"]["details"]["collection_ids"] == [foreign]
    monkeypatch.setattr(selection, "MAX_FILTERED_OBJECTS", 3)
    too_many = refused({"filters": _tag("a")}, 400)
    assert too_many["error"]["details"]["max_objects"] == 3 and "limit" in too_many["error"]["message"]
    assert _create(client, {"filters": _tag("a"), "limit": 3})["object_ids"] == ids[:3]
    assert _batch_count(client) == 1


def _received_for(receiver: Receiver, batch_id: str) -> list[dict[str, Any]]:
    return [r.json for r in receiver.received if r.json.get("batch_id") == batch_id]


def _wait_told(receiver: Receiver, batch_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not _received_for(receiver, batch_id):
        assert time.monotonic() < deadline, f"no webhook for {batch_id}"
        time.sleep(0.05)
    time.sleep(0.5)  # a second POST, were one made, would have arrived by now
    told = _received_for(receiver, batch_id)
    assert len(told) == 1, told
    return told[0]


def test_webhook_is_told_once_when_the_batch_ends(
    client: TestClient, namespace: dict[str, Any], runtime: Any, receiver: Receiver
) -> None:
    bucket_id = make_bucket(client)
    _from_bucket(client, "sentences", bucket_id)
    ids = [add_object(client, TEXT) for _ in range(2)]

    completed = _create(client, {"object_ids": ids})
    done = _run(client, completed["batch_id"], webhook_url=receiver.url)
    assert done["webhook_url"] == receiver.url
    # A repeated submit returns the first task; a webhook_url it can no longer honour is a 409.
    submit_again = f"/v1/buckets/docs/batches/{completed['batch_id']}/submit"
    assert client.post(submit_again, json={"webhook_url": receiver.url}).json()["task_id"] == done["task_id"]
    assert_error(client.post(submit_again, json={"webhook_url": receiver.url + "/other"}), 409)
    told = _wait_told(receiver, completed["batch_id"])
    assert told["status"] == "COMPLETED" and told["failure_reason"] is None
    assert told["documents_written"] == 4  # two sentences from each of two objects
    assert told["progress"]["processed"] == 2 and told["progress"]["total"] == 2
    assert datetime.fromisoformat(told["completed_at"]) <= datetime.fromisoformat(done["updated_at"])

    runtime.stop_background()  # hold the scheduler so the batch is still pending when canceled
    canceled = _create(client, {"object_ids": ids})
    submitted = client.post(
        f"/v1/buckets/docs/batches/{canceled['batch_id']}/submit", json={"webhook_url": receiver.url}
    )
    assert submitted.status_code == 200, submitted.text
    assert client.post(f"/v1/buckets/docs/batches/{canceled['batch_id']}/cancel").json()["status"] == "CANCELED"
    runtime.start_background()
    told = _wait_told(receiver, canceled["batch_id"])
    assert told["status"] == "CANCELED" and told["documents_written"] is None
    assert told["progress"]["processed"] == 0 and told["completed_at"]


def test_webhook_url_the_guard_refuses_is_a_400(
    client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    bucket_id = make_bucket(client)
    _from_bucket(client, "sentences", bucket_id)
    batch = _create(client, {"object_ids": [add_object(client, TEXT)]})
    port = int(receiver.url.split(":")[2].split("/")[0])
    for url in (f"http://127.0.0.1:{port + 1}/hook", "http://169.254.169.254/latest", "file:///etc/passwd"):
        response = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={"webhook_url": url})
        assert assert_error(response, 400)["error"]["details"]["webhook_url"] == url
    after = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()
    assert after["status"] == "DRAFT" and after["webhook_url"] is None
