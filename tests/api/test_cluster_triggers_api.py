"""Cluster triggers over the API: schedules (interval, cron), firing exactly once per slot, skips
while a run is active, pause/resume, history, and bad input; event triggers on documents added
(a threshold) and conditional triggers, each firing once with two trigger loops racing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.clock import utcnow
from strataflow.engine.triggers import TriggerLoop
from strataflow.runtime import TRIGGER_ACTIONS, Runtime
from strataflow.services.events.outbox import emit
from strataflow.store.tables import Collection, Trigger
from tests.cluster_points import points_collection
from tests.helpers import assert_error, wait_task


@pytest.fixture
def cluster(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> str:
    corpus = points_collection(client, runtime)
    created = client.post(
        "/v1/clusters",
        json={
            "cluster_name": "topics",
            "collection_ids": ["points"],
            "vector_config": {
                "feature_uris": [corpus["feature_uri"]],
                "clustering_method": "kmeans",
                "kmeans_parameters": {"n_clusters": 3},
            },
        },
    )
    assert created.status_code == 200, created.text
    assert runtime.triggers is not None
    runtime.triggers.stop()  # the test fires them itself
    return str(created.json()["cluster_id"])


def make_due(runtime: Runtime, trigger_id: str) -> None:
    with runtime.db.transaction() as session:
        row = session.get(Trigger, trigger_id)
        assert row is not None
        row.next_run_at = utcnow() - timedelta(seconds=1)


def test_schedules_and_bad_input(client: TestClient, cluster: str) -> None:
    created = client.post(
        "/v1/clusters/triggers",
        json={
            "cluster_id": cluster,
            "trigger_type": "interval",
            "schedule_config": {"interval_minutes": 30},
            "description": "half-hourly",
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["trigger_id"].startswith("trg_") and body["status"] == "active"
    assert body["schedule_config"] == {"interval_seconds": 1800}
    assert body["execution_config"]["collection_ids"]
    due = datetime.fromisoformat(body["next_scheduled_at"]) - utcnow()
    assert timedelta(minutes=29) < due <= timedelta(minutes=30)

    cron = client.post(
        "/v1/clusters/triggers",
        json={
            "cluster_id": "topics",
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "Europe/Paris"},
        },
    ).json()
    assert datetime.fromisoformat(cron["next_scheduled_at"]).minute % 5 == 0

    for schedule, trigger_type in (
        ({"interval_seconds": 5}, "interval"),
        ({"cron_expression": "61 * * * *"}, "cron"),
        ({"cron_expression": "0 * * * *", "timezone": "Mars/Base"}, "cron"),
        ({"event": "batch"}, "event"),
    ):
        assert_error(
            client.post(
                "/v1/clusters/triggers",
                json={"cluster_id": cluster, "trigger_type": trigger_type, "schedule_config": schedule},
            ),
            400,
        )
    assert_error(
        client.post(
            "/v1/clusters/triggers",
            json={"cluster_id": "nope", "trigger_type": "interval", "schedule_config": {"interval_hours": 1}},
        ),
        404,
    )

    listed = client.post("/v1/clusters/triggers/list", json={"cluster_id": cluster}).json()
    assert listed["total"] == 2
    assert [t["trigger_type"] for t in listed["results"]] == ["cron", "interval"]  # newest first by default
    for sort_by, direction, order in (("trigger_type", "desc", ["interval", "cron"]), ("created_at", "asc", None)):
        asked = {"cluster_id": cluster, "sort_by": sort_by, "direction": direction}
        sorted_list = client.post("/v1/clusters/triggers/list", json=asked).json()
        assert [t["trigger_type"] for t in sorted_list["results"]] == (order or ["interval", "cron"])
    only_cron = client.post("/v1/clusters/triggers/list", json={"trigger_type": "cron", "limit": 1}).json()
    assert [t["trigger_id"] for t in only_cron["results"]] == [cron["trigger_id"]] and only_cron["total"] == 1
    bad = assert_error(client.post("/v1/clusters/triggers/list", json={"sort_by": "secret"}), 400)
    assert "secret" in bad["error"]["message"]
    assert_error(client.post("/v1/clusters/triggers/list", json={"direction": "sideways"}), 422)
    paused = client.post(f"/v1/clusters/triggers/{body['trigger_id']}/pause").json()
    assert paused["status"] == "paused" and paused["next_scheduled_at"] is None
    resumed = client.post(f"/v1/clusters/triggers/{body['trigger_id']}/resume").json()
    assert resumed["status"] == "active" and resumed["next_scheduled_at"]
    changed = client.patch(
        f"/v1/clusters/triggers/{body['trigger_id']}", json={"schedule_config": {"interval_hours": 2}}
    ).json()
    assert changed["schedule_config"] == {"interval_seconds": 7200}
    assert_error(client.patch(f"/v1/clusters/triggers/{body['trigger_id']}", json={"status": "sleepy"}), 400)
    assert client.delete(f"/v1/clusters/triggers/{body['trigger_id']}").json()["success"] is True
    assert_error(client.get(f"/v1/clusters/triggers/{body['trigger_id']}"), 404)


def test_firing_runs_the_cluster_once_per_slot(client: TestClient, cluster: str, runtime: Runtime) -> None:
    assert runtime.triggers is not None
    trigger = client.post(
        "/v1/clusters/triggers",
        json={"cluster_id": cluster, "trigger_type": "interval", "schedule_config": {"interval_seconds": 3600}},
    ).json()
    tid = trigger["trigger_id"]
    assert runtime.triggers.run_pending() == 0  # not due yet
    runtime.jobs.stop()
    try:
        make_due(runtime, tid)
        assert runtime.triggers.run_pending() == 1
        assert runtime.triggers.run_pending() == 0  # the slot moved on: fired once
        fired = client.get(f"/v1/clusters/triggers/{tid}").json()
        assert fired["execution_count"] == 1 and fired["last_execution_status"] == "queued"
        assert datetime.fromisoformat(fired["next_scheduled_at"]) > utcnow() + timedelta(minutes=59)

        make_due(runtime, tid)  # due again while the first run is still queued: skipped, not failed
        assert runtime.triggers.run_pending() == 1
        skipped = client.get(f"/v1/clusters/triggers/{tid}").json()
        assert skipped["last_execution_status"] == "skipped" and "already running" in skipped["last_execution_error"]
        assert skipped["consecutive_failures"] == 0 and skipped["status"] == "active"
    finally:
        runtime.jobs.start()
    wait_task(client, fired["last_execution_job_id"], timeout=60)
    history = client.post(f"/v1/clusters/triggers/{tid}/history", json={}).json()
    assert history["total"] == 2
    newest, first = history["executions"]
    assert (
        first["status"] == "COMPLETED"
        and first["num_clusters"] == 3
        and first["job_id"] == fired["last_execution_job_id"]
    )
    assert newest["status"] == "skipped"
    for status, expected in (("completed", [first]), ("SKIPPED", [newest]), ("failed", [])):
        filtered = client.post(f"/v1/clusters/triggers/{tid}/history", json={"status_filter": status}).json()
        assert filtered["executions"] == expected and filtered["total"] == len(expected)
    assert client.get(f"/v1/clusters/{cluster}").json()["num_clusters"] == 3

    client.post(f"/v1/clusters/triggers/{tid}/pause")
    with runtime.db.transaction() as session:
        row = session.get(Trigger, tid)
        assert row is not None
        row.next_run_at = utcnow() - timedelta(seconds=1)  # even if a slot were due, paused fires nothing
    assert runtime.triggers.fire_due() == 0


def _written(runtime: Runtime, collection_id: str, rows: int) -> None:
    """Record `collection.documents.written` as a finished tier does (the outbox, in its transaction)."""
    with runtime.db.transaction() as session:
        collection = session.get(Collection, collection_id)
        assert collection is not None
        emit(
            session,
            "collection.documents.written",
            namespace_id=collection.namespace_id,
            resource_id=collection_id,
            payload={"collection_id": collection_id, "rows_done": rows, "rows_total": rows},
        )


def test_event_and_conditional_cluster_triggers(client: TestClient, cluster: str, runtime: Runtime) -> None:
    points = client.get("/v1/collections/points").json()["collection_id"]
    base = {"cluster_id": cluster}
    on_event = client.post(
        "/v1/clusters/triggers",
        json={
            **base,
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": 10,
                "collection_id": "points",
                "cooldown_seconds": 300,
            },
        },
    )
    assert on_event.status_code == 200, on_event.text
    assert on_event.json()["schedule_config"]["resource_id"] == points
    assert on_event.json()["next_scheduled_at"] is None
    on_check = client.post(
        "/v1/clusters/triggers",
        json={
            **base,
            "trigger_type": "conditional",
            "schedule_config": {"condition_type": "documents_added", "collection_id": points, "threshold": 8},
        },
    ).json()
    assert on_check["next_scheduled_at"] is not None
    for schedule in (
        {"condition_type": "drift", "threshold": 0.3, "metric": "cosine_drift", "check_interval_seconds": 3600},
        {"condition_type": "documents_added", "collection_id": points, "check_interval_seconds": 5},
    ):
        refused = client.post(
            "/v1/clusters/triggers", json={**base, "trigger_type": "conditional", "schedule_config": schedule}
        )
        assert_error(refused, 400)

    _written(runtime, points, 5)
    assert client.get(f"/v1/clusters/triggers/{on_event.json()['trigger_id']}").json()["next_scheduled_at"] is None
    _written(runtime, points, 6)  # 11 documents: the event trigger is due, the condition holds
    make_due(runtime, on_check["trigger_id"])
    runtime.jobs.stop()
    try:
        loops = [TriggerLoop(runtime.jobs.context, TRIGGER_ACTIONS, 1.0) for _ in range(2)]
        fired: list[int] = []
        start = threading.Barrier(2)

        def race(loop: TriggerLoop) -> None:
            start.wait()
            fired.append(loop.fire_due())

        threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(fired) == 2  # each trigger once
        states = [
            client.get(f"/v1/clusters/triggers/{t}").json()
            for t in (on_event.json()["trigger_id"], on_check["trigger_id"])
        ]
        assert sorted(s["last_execution_status"] for s in states) == ["queued", "skipped"]  # one run at a time
        queued = next(s["last_execution_job_id"] for s in states if s["last_execution_status"] == "queued")
    finally:
        runtime.jobs.start()
    wait_task(client, queued, timeout=60)
