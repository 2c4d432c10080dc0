"""Alerts over HTTP on SQLite and PostgreSQL: a saved retriever over real documents, conditions,
the cooldown, notification through a webhook to a real receiver, executions, and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, run
from tests.events_receiver import Receiver, verify
from tests.helpers import assert_error

SECRET = "alert-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"outbound_allow": receiver.url.split("/")[2], "events_poll_interval_s": 0.05})


def _filter(field: str, value: Any) -> dict[str, Any]:
    return {
        "stage_name": "pick",
        "config": {
            "stage_id": "attribute_filter",
            "parameters": {"filters": {"field": field, "operator": "eq", "value": value}},
        },
    }


@pytest.fixture
def world(client: TestClient, namespace: dict[str, Any], runtime: Runtime, receiver: Receiver) -> dict[str, Any]:
    make_bucket(client)
    collection = client.post(
        "/v1/collections",
        json={
            "collection_name": "notes",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": {
                "feature_extractor_name": "passthrough_extractor",
                "version": "v1",
                "field_passthrough": [{"source_path": "title"}, {"source_path": "lang"}, {"source_path": "views"}],
                "parameters": {"extractor_type": "passthrough_extractor"},
            },
        },
    )
    assert collection.status_code == 200, collection.text
    objects = [
        add_object(client, "a", title="Bread", lang="food", views=40),
        add_object(client, "b", title="Cake", lang="food", views=25),
        add_object(client, "c", title="Moon", lang="space", views=90),
    ]
    result = run(runtime, collection.json()["collection_id"], objects)
    assert result.failures == [] and result.documents_written == 3
    retrievers = {}
    for name, stage in (("food", _filter("lang", "food")), ("none", _filter("lang", "jazz"))):
        created = client.post(
            "/v1/retrievers",
            json={"retriever_name": name, "collection_identifiers": ["notes"], "stages": [stage], "input_schema": {}},
        )
        assert created.status_code == 200, created.text
        retrievers[name] = created.json()["retriever_id"]
    hook = client.post(
        "/v1/organizations/webhooks",
        json={
            "webhook_name": "alerts",
            "event_types": ["object.deleted"],  # not subscribed to alerts: the alert's channel names it
            "channels": [{"channel": "webhook", "configs": {"url": receiver.url, "signing_secret": SECRET}}],
        },
    )
    assert hook.status_code == 200, hook.text
    return {"retrievers": retrievers, "webhook_id": hook.json()["webhook_id"]}


def _alert(world: dict[str, Any], name: str, retriever: str = "food", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "retriever_id": world["retrievers"][retriever],
        "notification_config": {"channels": [{"channel_type": "webhook", "channel_id": world["webhook_id"]}]},
        **extra,
    }


def test_an_alert_fires_notifies_and_then_cools_down(
    client: TestClient, world: dict[str, Any], receiver: Receiver
) -> None:
    body = _alert(
        world,
        "food-seen",
        min_count=2,
        threshold={"field": "lang", "operator": "eq", "value": "food"},
        cooldown_seconds=3600,
    )
    created = client.post("/v1/alerts", json=body)
    assert created.status_code == 200, created.text
    alert = created.json()
    assert alert["alert_id"].startswith("alt_") and alert["trigger_on"] == "results" and alert["last_fired_at"] is None

    first = client.post(f"/v1/alerts/{alert['alert_id']}/execute").json()
    assert first["triggered"] is True and first["match_count"] == 2
    assert sorted(m["metadata"]["title"] for m in first["matches"]) == ["Bread", "Cake"]
    assert first["deliveries"] == [{"channel_type": "webhook", "status": "deferred", "error": None}]
    notified = [r for r in receiver.wait_for(1) if r.json["event_type"] == "alert.triggered"]
    assert len(notified) == 1 and verify(SECRET, notified[0])
    assert notified[0].json["payload"]["execution_id"] == first["execution_id"]
    assert notified[0].json["payload"]["match_count"] == 2

    second = client.post("/v1/alerts/food-seen/execute").json()  # by name, inside the cooldown
    assert second["triggered"] is False and second["suppressed_by_cooldown"] is True
    assert client.get(f"/v1/alerts/{alert['alert_id']}").json()["last_fired_at"] is not None

    runs = client.get(f"/v1/alerts/{alert['alert_id']}/executions").json()
    assert runs["total_count"] == 2 and [r["execution_id"] for r in runs["results"]][-1] == first["execution_id"]
    assert client.get(f"/v1/alerts/{alert['alert_id']}/results").json()["execution_id"] == second["execution_id"]
    assert client.get(f"/v1/alerts/executions/{first['execution_id']}").json()["triggered"] is True
    assert client.get("/v1/alerts/executions").json()["total_count"] == 2


def test_conditions(client: TestClient, world: dict[str, Any]) -> None:
    def fired(**extra: Any) -> bool:
        created = client.post("/v1/alerts", json=_alert(world, f"a{len(extra)}{sorted(extra)}", **extra))
        assert created.status_code == 200, created.text
        return bool(client.post(f"/v1/alerts/{created.json()['alert_id']}/execute").json()["triggered"])

    assert fired(min_count=3) is False
    assert fired(threshold={"field": "lang", "operator": "ne", "value": "food"}) is False
    assert fired(retriever="none", trigger_on="no_results") is True
    assert fired(retriever="none") is False


def test_crud_and_refusals(client: TestClient, world: dict[str, Any]) -> None:
    for change, status in (
        ({"retriever_id": "ret_missing"}, 404),
        ({"notification_config": {"channels": [{"channel_type": "email", "config": {"to": "a@b.c"}}]}}, 400),
        ({"notification_config": {"channels": [{"channel_type": "webhook"}]}}, 400),
        (
            {"notification_config": {"channels": [{"channel_type": "webhook", "channel_id": "wh_0000000000000000"}]}},
            404,
        ),
        ({"trigger_on": "sometimes"}, 400),
        ({"threshold": {"field": "views", "operator": "roughly", "value": 3}}, 400),
        ({"source": "system"}, 400),
    ):
        assert_error(client.post("/v1/alerts", json={**_alert(world, "bad"), **change}), status)
    assert client.get("/v1/alerts").json()["total_count"] == 0  # nothing half-written

    alert = client.post("/v1/alerts", json=_alert(world, "watch", description="food watch")).json()
    assert_error(client.post("/v1/alerts", json=_alert(world, "watch")), 409)
    patched = client.patch(f"/v1/alerts/{alert['alert_id']}", json={"min_count": 2, "enabled": False}).json()
    assert patched["min_count"] == 2 and patched["enabled"] is False and patched["trigger_on"] == "results"
    assert client.post("/v1/alerts/list", json={"search": "FOOD"}).json()["total_count"] == 1
    assert client.post("/v1/alerts/list", json={"search": "nothing"}).json()["total_count"] == 0
    assert client.delete("/v1/alerts/watch").json()["alert_id"] == alert["alert_id"]
    assert_error(client.get(f"/v1/alerts/{alert['alert_id']}"), 404)


def test_an_alert_applied_on_ingest_runs_after_a_batch_writes_documents(
    client: TestClient, world: dict[str, Any], receiver: Receiver
) -> None:
    alert = client.post("/v1/alerts", json=_alert(world, "after-ingest", min_count=3)).json()
    application = {
        "alert_id": alert["alert_id"],
        "execution_mode": "on_ingest",
        "input_mappings": [{"input_key": "unused", "source": {"source_type": "constant", "value": 1}}],
    }
    patched = client.patch("/v1/collections/notes", json={"alert_applications": [application]})
    assert patched.status_code == 200, patched.text
    new = add_object(client, "d", title="Soup", lang="food", views=5)  # the third food note
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [new]}).json()
    assert client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).status_code == 200
    notified = [r for r in receiver.wait_for(1, timeout=60) if r.json["event_type"] == "alert.triggered"]
    assert notified and notified[0].json["payload"]["mode"] == "on_ingest"
    assert notified[0].json["payload"]["match_count"] == 3
    runs = client.get(f"/v1/alerts/{alert['alert_id']}/executions").json()
    assert runs["total_count"] == 1 and runs["results"][0]["mode"] == "on_ingest"
