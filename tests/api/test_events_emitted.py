"""The event types beyond objects and lifecycles, on SQLite and PostgreSQL: document changes
through the documents API (single and batch, bounded), cluster executions, retriever executions
(`resource.*`), and the types this server never emits, refused at subscription."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from strataflow.runtime import Runtime
from strataflow.services.documents import events as document_events
from tests.cluster_points import write_points
from tests.collection_flows import make_bucket, text_collection
from tests.events_receiver import Receiver, verify
from tests.helpers import assert_error, wait_task

SECRET = "whsec_emitted_0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"outbound_allow": receiver.url.split("/")[2], "events_poll_interval_s": 0.05})


def _events(client: TestClient, event_type: str) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params={"event_type": event_type, "limit": 1000})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def _subscribe(client: TestClient, url: str, event_types: list[str]) -> dict[str, Any]:
    body = {
        "webhook_name": "emitted",
        "event_types": event_types,
        "channels": [{"channel": "webhook", "configs": {"url": url, "signing_secret": SECRET}}],
    }
    response = client.post("/v1/organizations/webhooks", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def notes(client: TestClient, namespace: dict[str, Any]) -> dict[str, Any]:
    make_bucket(client)
    return text_collection(client, "notes", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none")


def test_document_changes_are_delivered_with_the_document(
    client: TestClient, notes: dict[str, Any], receiver: Receiver
) -> None:
    _subscribe(client, receiver.url, ["document.created", "document.updated", "document.deleted"])
    created = client.post("/v1/collections/notes/documents", json={"text": "first note", "title": "one"})
    assert created.status_code == 200, created.text
    doc_id = created.json()["document_id"]
    patched = client.patch(f"/v1/collections/notes/documents/{doc_id}", json={"title": "uno"})
    assert patched.status_code == 200, patched.text
    assert client.delete(f"/v1/collections/notes/documents/{doc_id}").status_code == 200
    assert_error(client.patch(f"/v1/collections/notes/documents/{doc_id}", json={"title": "x"}), 404)  # no event

    got = receiver.wait_for(3)
    time.sleep(0.2)  # a fourth (the refused patch) would have arrived by now
    assert len(receiver.received) == 3 and all(verify(SECRET, r) for r in got)
    by_type = {r.headers["x-mixpeek-event"]: r.json for r in got}
    assert set(by_type) == {"document.created", "document.updated", "document.deleted"}
    made = by_type["document.created"]
    assert made["resource_type"] == "document" and made["resource_id"] == doc_id and made["operation"] == "insert"
    assert made["payload"]["collection_id"] == notes["collection_id"]
    assert made["payload"]["collection_name"] == "notes"
    assert made["payload"]["document"]["text"] == "first note" and made["payload"]["document"]["title"] == "one"
    assert by_type["document.updated"]["payload"]["document"]["title"] == "uno"
    assert by_type["document.deleted"]["payload"]["document_id"] == doc_id
    assert [e["event_type"] for e in _events(client, "document.updated")] == ["document.updated"]


def test_batch_document_changes_are_one_event_with_bounded_ids(
    client: TestClient, notes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [
        client.post("/v1/collections/notes/documents", json={"text": f"n{n}", "title": "batch"}).json()["document_id"]
        for n in range(5)
    ]
    assert len(_events(client, "document.created")) == 5

    updates = {"updates": [{"document_id": i, "update_data": {"title": "b2"}} for i in ids[:2]]}
    updates["updates"].append({"document_id": "doc_missing", "update_data": {"title": "b2"}})
    assert client.post("/v1/collections/notes/documents/batch", json=updates).json()["updated_count"] == 2
    [by_ids] = _events(client, "documents.updated.batch")
    assert by_ids["resource_id"] == notes["collection_id"] and by_ids["resource_type"] == "document"
    assert sorted(by_ids["payload"]["document_ids"]) == sorted(ids[:2]) and by_ids["payload"]["count"] == 2
    assert by_ids["payload"]["fields"] == ["title"] and by_ids["payload"]["document_ids_truncated"] is False

    # A filter form names at most IDS_MAX ids (3 here) and says that there were more.
    monkeypatch.setattr(document_events, "IDS_MAX", 3)
    flt = {"field": "title", "operator": "eq", "value": "batch"}
    bulk = client.patch("/v1/collections/notes/documents/bulk", json={"filters": flt, "update_data": {"seen": True}})
    assert bulk.status_code == 200 and bulk.json()["updated_count"] == 3, bulk.text
    matching = client.post(
        "/v1/collections/notes/documents/batch", json={"filters": flt, "update_data": {"seen": False}}
    ).json()
    assert matching["updated_count"] == 3
    _, second, _ = _events(client, "documents.updated.batch")
    assert second["payload"]["count"] == 3 and second["payload"]["filters"] == flt
    assert second["payload"]["fields"] == ["seen"] and len(second["payload"]["document_ids"]) == 3

    too_long = {"document_ids": ids, "reason": "x" * 501}
    assert_error(client.request("DELETE", "/v1/collections/notes/documents/batch", json=too_long), 422)
    body = {"document_ids": ids, "reason": "GDPR erasure #42"}
    deleted = client.request("DELETE", "/v1/collections/notes/documents/batch", json=body)
    assert deleted.status_code == 200 and deleted.json()["deleted_count"] == 5, deleted.text
    [gone] = _events(client, "documents.deleted.batch")
    assert gone["payload"]["reason"] == "GDPR erasure #42"
    assert gone["payload"]["count"] == 5 and gone["payload"]["document_ids_truncated"] is True
    assert len(gone["payload"]["document_ids"]) == 3 and set(gone["payload"]["document_ids"]) <= set(ids)
    # Nothing matched: no event.
    none = client.request("DELETE", "/v1/collections/notes/documents/batch", json={"document_ids": ["doc_nope"]})
    assert none.status_code == 200 and none.json()["deleted_count"] == 0
    assert len(_events(client, "documents.deleted.batch")) == 1


def test_cluster_executions_record_started_completed_and_failed(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    make_bucket(client)
    collection = text_collection(
        client, "points", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    write_points(runtime, collection["collection_id"])
    uri = client.get(f"/v1/collections/{collection['collection_id']}/features").json()["features"][0]["feature_uri"]
    body = {
        "cluster_name": "topics",
        "collection_ids": ["points"],
        "cluster_type": "vector",
        "vector_config": {"feature_uris": [uri], "clustering_method": "kmeans", "kmeans_parameters": {"n_clusters": 3}},
    }
    cid = client.post("/v1/clusters", json=body).json()["cluster_id"]
    started = client.post(f"/v1/clusters/{cid}/execute").json()
    assert wait_task(client, started["task_id"], timeout=60)["status"] == "COMPLETED"
    [began] = _events(client, "cluster.execution.started")
    [done] = _events(client, "cluster.execution.completed")
    assert began["resource_id"] == done["resource_id"] == cid
    assert began["payload"]["run_id"] == done["payload"]["run_id"] == started["run_id"]
    assert done["payload"]["status"] == "COMPLETED" and done["payload"]["num_clusters"] == 3
    assert done["payload"]["cluster_name"] == "topics" and len(done["payload"]["groups"]) == 3
    assert sum(g["num_members"] for g in done["payload"]["groups"]) == done["payload"]["num_points"] == 60
    assert began["seq"] < done["seq"]

    runtime.jobs.stop()
    try:
        queued = client.post(f"/v1/clusters/{cid}/execute").json()
        client.post(f"/v1/clusters/{cid}/executions/{queued['run_id']}/cancel")
    finally:
        runtime.jobs.start()
    [failed] = _events(client, "cluster.execution.failed")
    assert failed["payload"]["run_id"] == queued["run_id"] and failed["payload"]["status"] == "CANCELED"


def test_retriever_executions_record_resource_events(client: TestClient, notes: dict[str, Any]) -> None:
    stage = {
        "stage_name": "only",
        "stage_type": "filter",
        "config": {
            "stage_id": "attribute_filter",
            "parameters": {"filters": {"field": "title", "operator": "eq", "value": "a"}},
        },
    }
    client.post("/v1/collections/notes/documents", json={"text": "x", "title": "a"})
    ran = client.post(
        "/v1/retrievers/execute",
        json={"collection_identifiers": ["notes"], "input_schema": {}, "stages": [stage], "inputs": {}},
    )
    assert ran.status_code == 200, ran.text
    [event] = _events(client, "resource.executed")
    assert event["resource_type"] == "retriever" and event["payload"]["status"] in {"completed", "partial"}
    assert event["payload"]["execution_id"] and event["payload"]["total_returned"] == len(ran.json()["documents"])


def test_types_never_emitted_are_refused_at_subscription(client: TestClient, receiver: Receiver) -> None:
    for event_type in ("annotation.created", "manifest.apply.resource_state"):
        error = assert_error(
            client.post(
                "/v1/organizations/webhooks",
                json={
                    "webhook_name": "never",
                    "event_types": ["object.created", event_type],
                    "channels": [{"channel": "webhook", "configs": {"url": receiver.url}}],
                },
            ),
            400,
        )
        assert event_type in error["error"]["message"] and "never emits" in error["error"]["message"]
    assert client.post("/v1/organizations/webhooks/list", json={}).json()["total"] == 0
    for event_type in ("document.created", "cluster.execution.completed", "resource.executed", "*"):
        _subscribe(client, receiver.url, [event_type])
