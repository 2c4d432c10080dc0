"""Generic triggers (/v1/triggers) on SQLite and PostgreSQL: refusals at creation, an event trigger
that evaluates an alert when objects land (notified through a webhook to a real receiver),
execute-now, history, and one firing per due time with two trigger loops racing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.triggers import TriggerLoop
from strataflow.runtime import TRIGGER_ACTIONS, Runtime
from strataflow.services.triggers.settle import settle_firings
from strataflow.store.tables import AlertExecution, OutboxEvent, Trigger, TriggerFiring
from tests.collection_flows import add_object, make_bucket
from tests.events_receiver import Receiver
from tests.helpers import assert_error, wait_task


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"outbound_allow": receiver.url.split("/")[2], "events_poll_interval_s": 0.05})


@pytest.fixture
def alert(client: TestClient, namespace: dict[str, Any], receiver: Receiver) -> str:
    """An alert that holds while a retriever finds nothing (trigger_on no_results), notifying a webhook."""
    make_bucket(client)
    collection = client.post(
        "/v1/collections",
        json={
            "collection_name": "notes",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": {
                "feature_extractor_name": "passthrough_extractor",
                "version": "v1",
                "field_passthrough": [{"source_path": "title"}],
                "parameters": {"extractor_type": "passthrough_extractor"},
            },
        },
    )
    assert collection.status_code == 200, collection.text
    stage = {
        "stage_name": "pick",
        "config": {
            "stage_id": "attribute_filter",
            "parameters": {"filters": {"field": "title", "operator": "eq", "value": "x"}},
        },
    }
    retriever = client.post(
        "/v1/retrievers",
        json={"retriever_name": "quiet", "collection_identifiers": ["notes"], "stages": [stage], "input_schema": {}},
    )
    assert retriever.status_code == 200, retriever.text
    hook = client.post(
        "/v1/organizations/webhooks",
        json={
            "webhook_name": "alerts",
            "event_types": ["alert.triggered"],
            "channels": [{"channel": "webhook", "configs": {"url": receiver.url}}],
        },
    ).json()
    created = client.post(
        "/v1/alerts",
        json={
            "name": "quiet",
            "retriever_id": retriever.json()["retriever_id"],
            "trigger_on": "no_results",
            "notification_config": {"channels": [{"channel_type": "webhook", "channel_id": hook["webhook_id"]}]},
        },
    )
    assert created.status_code == 200, created.text
    return str(created.json()["alert_id"])


def _history(client: TestClient, trigger_id: str, firings: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        history: dict[str, Any] = client.get(f"/v1/triggers/{trigger_id}/history").json()
        if history["total"] >= firings or time.monotonic() > deadline:
            return history
        time.sleep(0.05)


def test_refusals_change_nothing(client: TestClient, alert: str) -> None:
    good = {
        "action_type": "alert_evaluation",
        "action_config": {"alert_id": alert},
        "trigger_type": "cron",
        "schedule_config": {"cron_expression": "0 3 * * *"},
    }
    for change, status in (
        ({"action_type": "teleport"}, 400),
        ({"action_type": "batch_rerun", "action_config": {"batch_id": "btch_missing"}}, 404),
        ({"action_type": "batch_rerun", "action_config": {"batch_id": "btch_x", "filters": {"AND": []}}}, 400),
        ({"action_config": {"alert_id": "alt_missing"}}, 404),
        ({"action_config": {}}, 400),
        ({"action_type": "cluster", "action_config": {"cluster_id": "clust_missing"}}, 404),
        ({"action_type": "retriever_execution", "action_config": {"retriever_id": "ret_missing"}}, 404),
        ({"schedule_config": {"cron_expression": "every day at 3"}}, 400),
        ({"trigger_type": "event", "schedule_config": {"event_type": "annotation.created"}}, 400),
        ({"trigger_type": "conditional", "schedule_config": {}}, 400),
        ({"trigger_type": "conditional", "schedule_config": {"condition_type": "drift", "threshold": 0.3}}, 400),
        ({"trigger_type": "conditional", "schedule_config": {"condition_type": "dlq_growth"}}, 400),
        ({"trigger_type": "conditional", "schedule_config": {"condition_type": "documents_added"}}, 400),
        (
            {
                "trigger_type": "conditional",
                "schedule_config": {"condition_type": "documents_added", "collection_id": "col_missing"},
            },
            404,
        ),
        ({"trigger_type": "event", "schedule_config": {"event_type": "documents_added"}}, 400),
        (
            {
                "trigger_type": "event",
                "schedule_config": {"event_type": "object.created", "event_threshold": 0},
            },
            400,
        ),
        ({"trigger_type": "event", "schedule_config": {"event_type": "object.exploded"}}, 400),
        ({"trigger_type": "event", "schedule_config": {"event_type": "trigger.fired"}}, 400),
        ({"trigger_type": "interval", "schedule_config": {"interval_seconds": 5}}, 400),
    ):
        assert_error(client.post("/v1/triggers", json={**good, **change}), status)
    assert client.get("/v1/triggers").json()["total"] == 0
    created = client.post("/v1/triggers", json={**good, "name": "nightly"}).json()
    assert created["action_type"] == "alert_evaluation" and created["name"] == "nightly"
    assert created["next_scheduled_at"] and created["is_overdue"] is False
    assert client.post("/v1/triggers/list", json={"action_type": "alert_evaluation"}).json()["total"] == 1
    assert client.post(f"/v1/triggers/{created['trigger_id']}/pause").json()["status"] == "paused"
    assert client.patch(f"/v1/triggers/{created['trigger_id']}", json={"name": "n2"}).json()["name"] == "n2"
    assert client.delete(f"/v1/triggers/{created['trigger_id']}").status_code == 204
    assert_error(client.get(f"/v1/triggers/{created['trigger_id']}"), 404)


def test_an_event_trigger_evaluates_the_alert_when_objects_land(
    client: TestClient, alert: str, receiver: Receiver
) -> None:
    trigger = client.post(
        "/v1/triggers",
        json={
            "action_type": "alert_evaluation",
            "action_config": {"alert_id": alert},
            "trigger_type": "event",
            "schedule_config": {"event_type": "object.created"},
        },
    ).json()
    assert trigger["next_scheduled_at"] is None  # waits for an event, not the clock
    add_object(client, "one", title="a")
    add_object(client, "two", title="b")  # coalesced with the first: one firing
    got = receiver.wait_for(1)[0]
    assert got.json["event_type"] == "alert.triggered" and got.json["payload"]["mode"] == "scheduled"
    history = _history(client, trigger["trigger_id"], 1)  # the firing is recorded just after the action
    assert history["total"] == 1 and history["executions"][0]["status"] == "queued"
    after = client.get(f"/v1/triggers/{trigger['trigger_id']}").json()
    assert after["execution_count"] == 1 and after["last_execution_task_id"].startswith("exec_")
    add_object(client, "three", title="c")  # within a minute of the firing: due only a minute after it
    again = client.get(f"/v1/triggers/{trigger['trigger_id']}").json()
    assert again["next_scheduled_at"] is not None and again["is_overdue"] is False


def test_execute_now_and_one_firing_per_due_time(client: TestClient, alert: str, runtime: Runtime) -> None:
    assert runtime.triggers is not None
    runtime.triggers.stop()  # only the two loops below fire
    trigger = client.post(
        "/v1/triggers",
        json={
            "action_type": "alert_evaluation",
            "action_config": {"alert_id": alert},
            "trigger_type": "interval",
            "schedule_config": {"interval_minutes": 60},
        },
    ).json()
    tid = trigger["trigger_id"]
    task = client.post(f"/v1/triggers/{tid}/execute").json()
    assert task["status"] == "COMPLETED" and task["task_id"].startswith("exec_")
    assert client.get(f"/v1/alerts/executions/{task['task_id']}").json()["triggered"] is True

    with runtime.db.transaction() as session:
        row = session.get(Trigger, tid)
        assert row is not None
        row.next_run_at = utcnow() - timedelta(seconds=1)
    loops = [TriggerLoop(runtime.jobs.context, TRIGGER_ACTIONS, 1.0) for _ in range(2)]
    fired: list[int] = []
    start = threading.Barrier(2)

    def race(loop: TriggerLoop) -> None:
        start.wait()
        fired.append(loop.run_pending())

    threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(fired) == [0, 1]
    with runtime.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(TriggerFiring)) == 2  # execute-now + one slot
        assert session.scalar(select(func.count()).select_from(AlertExecution)) == 2


def _race(runtime: Runtime) -> int:
    """Two trigger loops poll at once; how many firings they made together."""
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
    return sum(fired)


def _settle_racing(runtime: Runtime) -> list[int]:
    """Two trigger-firing sweeps at once; how many firings each settled."""
    settled: list[int] = []
    start = threading.Barrier(2)

    def sweep() -> None:
        start.wait()
        settled.append(settle_firings(runtime.jobs.context))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(settled)


def _due(runtime: Runtime, trigger_id: str) -> None:
    with runtime.db.transaction() as session:
        row = session.get(Trigger, trigger_id)
        assert row is not None
        row.next_run_at = utcnow() - timedelta(seconds=1)


def _firings(runtime: Runtime, trigger_id: str) -> int:
    with runtime.db.read_session() as session:
        query = select(func.count()).select_from(TriggerFiring).where(TriggerFiring.trigger_id == trigger_id)
        return int(session.scalar(query) or 0)


def test_a_conditional_trigger_fires_once_per_rise(client: TestClient, alert: str, runtime: Runtime) -> None:
    assert runtime.triggers is not None
    runtime.triggers.stop()  # only the loops below fire
    created = client.post(
        "/v1/triggers",
        json={
            "action_type": "alert_evaluation",
            "action_config": {"alert_id": alert},
            "trigger_type": "conditional",
            "schedule_config": {"condition_type": "collection_empty", "params": {"collection_id": "notes"}},
        },
    )
    assert created.status_code == 200, created.text
    trigger = created.json()
    assert trigger["trigger_type"] == "conditional" and trigger["next_scheduled_at"]
    assert trigger["schedule_config"]["check_interval_seconds"] == 300
    tid = trigger["trigger_id"]
    # a new schedule takes effect from now: every collection of the namespace, checked each minute
    assert (
        client.patch(
            f"/v1/triggers/{tid}",
            json={"schedule_config": {"condition_type": "collection_empty", "check_interval_seconds": 60}},
        ).status_code
        == 200
    )
    _due(runtime, tid)
    assert _race(runtime) == 1  # the collection is empty: the condition rose, one of the two fired
    assert _firings(runtime, tid) == 1
    _due(runtime, tid)
    assert _race(runtime) == 0  # still empty: no new rise, no new firing
    assert _firings(runtime, tid) == 1
    assert client.get(f"/v1/triggers/{tid}").json()["execution_count"] == 1


def _finished_batch(client: TestClient, object_id: str) -> str:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [object_id]}).json()
    assert client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).status_code == 200
    deadline = time.monotonic() + 60
    while client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.1)
    return str(batch["batch_id"])


def test_document_thresholds_and_batch_reruns(client: TestClient, alert: str, runtime: Runtime) -> None:
    assert runtime.triggers is not None
    runtime.triggers.stop()  # only the loops below fire
    action = {"action_type": "alert_evaluation", "action_config": {"alert_id": alert}}
    on_event = client.post(
        "/v1/triggers",
        json={
            **action,
            "trigger_type": "event",
            "schedule_config": {"event_type": "documents_added", "collection_id": "notes", "event_threshold": 2},
        },
    ).json()
    assert on_event["schedule_config"]["event_type"] == "collection.documents.written"
    assert on_event["schedule_config"]["resource_id"].startswith("col_")  # the name resolved to the id
    on_check = client.post(
        "/v1/triggers",
        json={
            **action,
            "trigger_type": "conditional",
            "schedule_config": {"condition_type": "documents_added", "collection_id": "notes", "threshold": 2},
        },
    ).json()
    first = _finished_batch(client, add_object(client, "one", title="a"))
    assert client.get(f"/v1/triggers/{on_event['trigger_id']}").json()["next_scheduled_at"] is None  # 1 of 2
    _due(runtime, on_check["trigger_id"])
    assert _race(runtime) == 0  # one document of two: the check does not fire
    _finished_batch(client, add_object(client, "two", title="b"))
    assert client.get(f"/v1/triggers/{on_event['trigger_id']}").json()["next_scheduled_at"] is not None
    _due(runtime, on_check["trigger_id"])
    assert _race(runtime) == 2  # each trigger once, whichever loop claimed it
    assert _firings(runtime, on_event["trigger_id"]) == 1 and _firings(runtime, on_check["trigger_id"]) == 1
    with runtime.db.read_session() as session:
        row = session.get(Trigger, on_event["trigger_id"])
        assert row is not None and row.pending_events == 0 and row.next_run_at is None

    rerun = client.post(
        "/v1/triggers",
        json={
            "action_type": "batch_rerun",
            "action_config": {"batch_id": first},
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "0 4 * * 0"},
        },
    )
    assert rerun.status_code == 200, rerun.text
    task = client.post(f"/v1/triggers/{rerun.json()['trigger_id']}/execute").json()
    assert task["task_id"] and task["task_type"] == "api_buckets_batches_process", task
    wait_task(client, task["task_id"], timeout=60)
    # Every firing's end is announced once, whichever of two racing sweeps settles it: the two alert
    # evaluations ran inline; the rerun's end is its task's.
    assert sum(_settle_racing(runtime)) == 3  # between them, each firing once
    assert _settle_racing(runtime) == [0, 0]
    with runtime.db.read_session() as session:
        ended = [
            (e.resource_id, e.payload["job_id"], e.payload["job_status"])
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "trigger.execution.completed"))
        ]
    assert sorted(ended) == sorted(
        [
            (on_event["trigger_id"], ANY, "COMPLETED"),
            (on_check["trigger_id"], ANY, "COMPLETED"),
            (rerun.json()["trigger_id"], task["task_id"], "COMPLETED"),
        ]
    ), ended
    only_failed = client.post(
        "/v1/triggers",
        json={
            "action_type": "batch_rerun",
            "action_config": {"batch_id": first, "retry_failed_only": True},
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "0 4 * * 0"},
        },
    ).json()
    assert_error(client.post(f"/v1/triggers/{only_failed['trigger_id']}/execute"), 400)  # nothing failed
