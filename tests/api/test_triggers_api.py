"""Generic triggers (/v1/triggers) on SQLite and PostgreSQL: refusals at creation, an event trigger
that evaluates an alert when objects land (notified through a webhook to a real receiver),
execute-now, history, and one firing per due time with two trigger loops racing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.triggers import TriggerLoop
from strataflow.runtime import TRIGGER_ACTIONS, Runtime
from strataflow.store.tables import AlertExecution, Trigger, TriggerFiring
from tests.collection_flows import add_object, make_bucket
from tests.events_receiver import Receiver
from tests.helpers import assert_error


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
        ({"action_type": "batch_rerun", "action_config": {"batch_id": "btch_x"}}, 400),
        ({"action_config": {"alert_id": "alt_missing"}}, 404),
        ({"action_config": {}}, 400),
        ({"action_type": "cluster", "action_config": {"cluster_id": "clust_missing"}}, 404),
        ({"action_type": "retriever_execution", "action_config": {"retriever_id": "ret_missing"}}, 404),
        ({"schedule_config": {"cron_expression": "every day at 3"}}, 400),
        ({"trigger_type": "conditional", "schedule_config": {}}, 400),
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
