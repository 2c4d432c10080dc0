"""Alerts over HTTP on SQLite and PostgreSQL: a saved retriever over real documents, conditions,
the cooldown, notification through a webhook to a real receiver, executions, and refusals;
organisation alerts, system alerts checked once per due time by racing sweeps, once-per-rise
notification and renotify_interval_seconds; after-ingest evaluation at least once (an evaluator
process SIGKILLed holding its claim, a taken-over claim fenced out)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from strataflow.clock import as_utc, utcnow
from strataflow.config import Settings
from strataflow.engine.triggers import TriggerLoop
from strataflow.runtime import TRIGGER_ACTIONS, TRIGGER_SWEEPS, Runtime
from strataflow.services.alerts.ingest import claim_next, evaluate_claimed, evaluate_pending, mark_pending
from strataflow.services.tenancy.auth import create_organization, issue_key
from strataflow.statuses import Status
from strataflow.store.tables import Alert, AlertExecution, AlertIngestClaim, StatusEvent
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


# --- organisation alerts, system alerts, re-notification ------------------------------------------


def _org(client: TestClient, path: str = "", method: str = "get", **kwargs: Any) -> Any:
    return getattr(client, method)(f"/v1/organizations/alerts{path}", **kwargs)


def test_organisation_alerts_share_the_alert_code(
    client: TestClient, world: dict[str, Any], receiver: Receiver, runtime: Runtime
) -> None:
    created = _org(client, method="post", json=_alert(world, "org-food", min_count=2))
    assert created.status_code == 200, created.text
    alert = created.json()
    assert alert["namespace_id"] is None and alert["source"] == "retriever"
    assert client.get("/v1/alerts").json()["total_count"] == 0  # not a namespace's alert
    assert_error(client.get(f"/v1/alerts/{alert['alert_id']}"), 404)
    listed = _org(client).json()
    assert listed["total_count"] == 1 and listed["stats"]["alerts_by_channel_type"] == {"webhook": 1}
    assert _org(client, "/list", "post", json={"search": "ORG-"}).json()["total_count"] == 1
    assert _org(client, "/org-food").json()["alert_id"] == alert["alert_id"]  # by name
    # the same name may be a namespace alert too: the two sets are apart
    assert client.post("/v1/alerts", json=_alert(world, "org-food")).status_code == 200
    assert_error(_org(client, method="post", json=_alert(world, "org-food")), 409)

    fired = _org(client, f"/{alert['alert_id']}/execute", "post").json()
    assert fired["triggered"] is True and fired["match_count"] == 2
    notified = [r for r in receiver.wait_for(1) if r.json["event_type"] == "alert.triggered"]
    assert notified[0].json["payload"]["scope"] == "organization" and notified[0].json["namespace_id"] is None
    runs = _org(client, f"/{alert['alert_id']}/executions").json()
    assert runs["total_count"] == 1

    with runtime.db.transaction() as session:  # another organisation sees none of it
        other = {"Authorization": f"Bearer {issue_key(session, create_organization(session, 'org-b'), 'k').plaintext}"}
    assert _org(client, headers={**other, "X-Namespace": ""}).json()["total_count"] == 0
    for method in ("get", "delete"):
        assert_error(_org(client, f"/{alert['alert_id']}", method, headers={**other, "X-Namespace": ""}), 404)
    assert_error(_org(client, "/org-food", "patch", json={"min_count": 1}, headers={**other, "X-Namespace": ""}), 404)
    assert_error(
        _org(client, method="post", json=_alert(world, "steal"), headers={**other, "X-Namespace": ""}), 404
    )  # A's retriever and webhook are no retriever of B's

    patched = _org(client, "/org-food", "patch", json={"min_count": 3, "description": "three"}).json()
    assert patched["min_count"] == 3 and patched["description"] == "three"
    assert _org(client, f"/{alert['alert_id']}/execute", "post").json()["triggered"] is False
    assert _org(client, f"/{alert['alert_id']}", "delete").json()["alert_id"] == alert["alert_id"]
    assert_error(_org(client, f"/{alert['alert_id']}"), 404)
    assert client.get("/v1/alerts/org-food").status_code == 200  # the namespace's alert stays


def test_organisation_alert_names_are_unique_in_the_database_too(
    client: TestClient, world: dict[str, Any], runtime: Runtime
) -> None:
    """Two creates racing past the service's name check: the second commit fails (a 409), not a twin."""
    first = _org(client, method="post", json=_alert(world, "twin")).json()
    table = Alert.__table__
    with runtime.db.transaction() as session:
        row = dict(session.execute(select(table).where(table.c.alert_id == first["alert_id"])).mappings().one())
    with pytest.raises(IntegrityError), runtime.db.transaction() as session:
        session.execute(insert(table).values({**row, "alert_id": "alt_twin_racer"}))
    assert _org(client).json()["total_count"] == 1


def test_alert_refusals_write_nothing(client: TestClient, world: dict[str, Any], namespace: dict[str, Any]) -> None:
    system = {"source": "system", "system_condition": {"type": "collection_empty"}}
    no_retriever = {k: v for k, v in _alert(world, "bad").items() if k != "retriever_id"}
    for path, body, status in (
        ("/v1/alerts", {**_alert(world, "bad"), "namespace_selector": {"mode": "all"}}, 400),
        ("/v1/organizations/alerts", {**_alert(world, "bad"), "namespace_selector": {"mode": "some"}}, 400),
        ("/v1/organizations/alerts", {**_alert(world, "bad"), "namespace_selector": {"mode": "selected"}}, 400),
        (
            "/v1/organizations/alerts",
            {**_alert(world, "bad"), "namespace_selector": {"mode": "selected", "namespace_ids": ["ns_missing"]}},
            404,
        ),
        ("/v1/organizations/alerts", {**_alert(world, "bad"), "retriever_id": "ret_missing"}, 404),
        ("/v1/alerts", {**no_retriever, "source": "system"}, 400),  # no condition
        ("/v1/alerts", {**no_retriever, **system, "system_condition": {"type": "dlq_growth"}}, 400),
        ("/v1/alerts", {**no_retriever, **system, "system_condition": {"type": "volcano"}}, 400),
        (
            "/v1/alerts",
            {**no_retriever, **system, "system_condition": {"type": "batch_failed", "params": {"window": 1}}},
            400,
        ),
        (
            "/v1/alerts",
            {**no_retriever, **system, "system_condition": {"type": "batch_failed", "params": {"window_minutes": -1}}},
            400,
        ),
        ("/v1/alerts", {**_alert(world, "bad"), **system}, 400),  # a retriever on a system alert
        ("/v1/alerts", {**no_retriever, **system, "trigger_on": "no_results"}, 400),
        ("/v1/alerts", {**_alert(world, "bad"), "cooldown_seconds": 600, "renotify_interval_seconds": 120}, 400),
        ("/v1/alerts", {**_alert(world, "bad"), "renotify_interval_seconds": 5}, 422),
    ):
        assert_error(client.post(path, json=body), status)
    assert client.get("/v1/alerts").json()["total_count"] == 0
    assert _org(client).json()["total_count"] == 0


def test_a_system_alert_measures_the_selected_namespaces(
    client: TestClient, world: dict[str, Any], runtime: Runtime, namespace: dict[str, Any]
) -> None:
    assert runtime.triggers is not None
    runtime.triggers.stop()  # the sweep below is the only one
    other = client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []}).json()
    client.headers.update({"X-Namespace": "other"})
    make_bucket(client, "elsewhere")
    client.headers.update({"X-Namespace": "main"})
    empty = client.post(
        "/v1/collections",
        headers={"X-Namespace": "other"},
        json={
            "collection_name": "nothing-yet",
            "source": {"type": "bucket", "bucket_ids": ["elsewhere"]},
            "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"},
        },
    )
    assert empty.status_code == 200, empty.text
    channels = _alert(world, "x")["notification_config"]
    body = {"name": "empty", "source": "system", "system_condition": {"type": "collection_empty"}}
    everywhere = _org(client, method="post", json={**body, "notification_config": channels}).json()
    assert everywhere["system_condition"]["params"]["check_interval_seconds"] == 60
    assert everywhere["namespace_selector"] is None and everywhere["trigger_on"] is None
    main_only = _org(
        client,
        method="post",
        json={
            **body,
            "name": "empty-main",
            "namespace_selector": {"mode": "selected", "namespace_ids": [namespace["namespace_id"]]},
            "notification_config": channels,
        },
    ).json()
    found = _org(client, f"/{everywhere['alert_id']}/execute", "post").json()
    assert found["triggered"] is True
    assert [m["document_id"] for m in found["matches"]] == [empty.json()["collection_id"]]
    assert found["matches"][0]["metadata"]["resource_type"] == "collection"
    assert _org(client, f"/{main_only['alert_id']}/execute", "post").json()["triggered"] is False
    assert other["namespace_id"]

    # a namespace's own system alert, checked by the sweep: two loops racing check it once
    local = client.post(
        "/v1/alerts",
        json={**body, "name": "failed", "notification_config": channels, "system_condition": {"type": "batch_failed"}},
    )
    assert local.status_code == 200, local.text
    with runtime.db.transaction() as session:
        for row in session.scalars(select(Alert)):
            row.next_check_at = utcnow() - timedelta(seconds=1)
    loops = [TriggerLoop(runtime.jobs.context, TRIGGER_ACTIONS, 1.0, sweeps=TRIGGER_SWEEPS) for _ in range(2)]
    counts: list[int] = []
    start = threading.Barrier(2)

    def race(loop: TriggerLoop) -> None:
        start.wait()
        counts.append(loop.run_pending())

    threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == 3  # three system alerts, each checked once
    with runtime.db.read_session() as session:
        modes = session.execute(select(AlertExecution.alert_id, AlertExecution.mode)).all()
        assert sorted(a for a, m in modes if m == "scheduled") == sorted(
            [everywhere["alert_id"], main_only["alert_id"], local.json()["alert_id"]]
        )
        for row in session.scalars(select(Alert)):
            assert row.next_check_at is not None and as_utc(row.next_check_at) > utcnow()


def test_once_per_rise_and_renotify(client: TestClient, world: dict[str, Any], runtime: Runtime) -> None:
    alert = client.post("/v1/alerts", json=_alert(world, "rise")).json()
    execute = f"/v1/alerts/{alert['alert_id']}/execute"
    assert client.post(execute).json()["triggered"] is True  # the rise
    held = client.post(execute).json()
    assert held["triggered"] is False and held["suppressed_by_cooldown"] is False  # still holding: notified once

    patched = client.patch(f"/v1/alerts/{alert['alert_id']}", json={"renotify_interval_seconds": 60})
    assert patched.json()["renotify_interval_seconds"] == 60
    assert client.post(execute).json()["triggered"] is False  # not a minute yet
    with runtime.db.transaction() as session:
        row = session.get(Alert, alert["alert_id"])
        assert row is not None and row.last_fired_at is not None
        row.last_fired_at = as_utc(row.last_fired_at) - timedelta(seconds=61)
    assert client.post(execute).json()["triggered"] is True  # a renotification

    # the condition falls (an input the retriever does not match: no results), then rises again
    client.patch(f"/v1/alerts/{alert['alert_id']}", json={"retriever_id": world["retrievers"]["none"]})
    assert client.post(execute).json()["triggered"] is False
    client.patch(f"/v1/alerts/{alert['alert_id']}", json={"retriever_id": world["retrievers"]["food"]})
    with runtime.db.transaction() as session:  # out of the renotify window: only a new rise notifies
        row = session.get(Alert, alert["alert_id"])
        assert row is not None and row.rise_notified is False
    assert client.post(execute).json()["triggered"] is True


# --- after-ingest evaluation: at least once ---------------------------------------------------------

CLAIMER = """
import sys, time
from strataflow.engine.leases import process_owner
from strataflow.services.tenancy.auth import create_organization, issue_key
from strataflow.services.alerts.ingest import claim_next
from strataflow.store.db import Database
claimed = claim_next(Database(sys.argv[1]), process_owner())
print("claimed" if claimed else "nothing", flush=True)
time.sleep(600)  # the evaluation would run here: the process is killed first
"""


def _applied(client: TestClient, world: dict[str, Any], runtime: Runtime) -> tuple[str, str]:
    assert runtime.triggers is not None
    runtime.triggers.stop()  # the test runs the sweep itself
    alert = client.post("/v1/alerts", json=_alert(world, "ingest")).json()
    application = {"alert_id": alert["alert_id"], "execution_mode": "on_ingest"}
    assert client.patch("/v1/collections/notes", json={"alert_applications": [application]}).status_code == 200
    collection_id = client.get("/v1/collections/notes").json()["collection_id"]
    return str(alert["alert_id"]), str(collection_id)


def _mark(runtime: Runtime, collection_id: str, documents: list[str]) -> None:
    with runtime.db.transaction() as session:  # as the transaction that finishes a tier does
        assert mark_pending(session, collection_id, documents) == 1


def _ingest_runs(runtime: Runtime, alert_id: str) -> list[AlertExecution]:
    with runtime.db.read_session() as session:
        return list(
            session.scalars(
                select(AlertExecution)
                .where(AlertExecution.alert_id == alert_id, AlertExecution.mode == "on_ingest")
                .order_by(AlertExecution.executed_at)
            )
        )


def test_an_evaluator_killed_mid_way_leaves_the_alert_to_the_next_sweep(
    client: TestClient, world: dict[str, Any], runtime: Runtime
) -> None:
    alert_id, collection_id = _applied(client, world, runtime)
    _mark(runtime, collection_id, ["doc_1"])
    process = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, runtime.db.url],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"claimed"
        with runtime.db.read_session() as session:
            row = session.get(AlertIngestClaim, alert_id)
            assert row is not None and row.status is Status.PROCESSING and row.fence_token == 1
        process.send_signal(signal.SIGKILL)  # dies holding the claim, before any record
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert _ingest_runs(runtime, alert_id) == []  # nothing recorded by the dead evaluator
    assert evaluate_pending(runtime.jobs.context) == 1  # its dead PID is noticed: evaluated again
    runs = _ingest_runs(runtime, alert_id)
    assert len(runs) == 1 and runs[0].source_documents == ["doc_1"] and runs[0].triggered is True
    with runtime.db.read_session() as session:
        row = session.get(AlertIngestClaim, alert_id)
        assert row is not None and row.status is Status.COMPLETED and row.fence_token == 2
        moves = session.execute(
            select(StatusEvent.from_status, StatusEvent.to_status)
            .where(StatusEvent.entity_type == "alert_ingest", StatusEvent.entity_id == alert_id)
            .order_by(StatusEvent.event_id)
        ).all()
        assert [tuple(m) for m in moves] == [
            (None, "PENDING"),
            ("PENDING", "PROCESSING"),
            ("PROCESSING", "PENDING"),
            ("PENDING", "PROCESSING"),
            ("PROCESSING", "COMPLETED"),
        ]
    assert evaluate_pending(runtime.jobs.context) == 0  # done: nothing more


def test_a_taken_over_claim_records_nothing_and_later_markings_wait(
    client: TestClient, world: dict[str, Any], runtime: Runtime
) -> None:
    alert_id, collection_id = _applied(client, world, runtime)
    context = runtime.jobs.context
    _mark(runtime, collection_id, ["doc_1"])
    slow = claim_next(runtime.db, "slow-holder", lease_s=0.0)  # its lease is over at once
    assert slow is not None and slow.documents == ["doc_1"]
    fast = claim_next(runtime.db, "fast-holder")  # takes it over
    assert fast is not None and fast.token == slow.token + 1
    _mark(runtime, collection_id, ["doc_2"])  # while it is being evaluated
    assert evaluate_claimed(context, fast, "fast-holder") is True
    assert evaluate_claimed(context, slow, "slow-holder") is False  # fenced out: not recorded
    assert [r.source_documents for r in _ingest_runs(runtime, alert_id)] == [["doc_1"]]
    with runtime.db.read_session() as session:
        row = session.get(AlertIngestClaim, alert_id)
        assert row is not None and row.status is Status.PENDING and row.documents == ["doc_2"]
    assert evaluate_pending(context) == 1  # the marking that came meanwhile
    assert [r.source_documents for r in _ingest_runs(runtime, alert_id)] == [["doc_1"], ["doc_2"]]


def test_alert_lists_filter_and_sort(client: TestClient, world: dict[str, Any]) -> None:
    for name, cooldown in [("alpha", 60), ("bravo", 0), ("charlie", 60)]:
        assert client.post("/v1/alerts", json=_alert(world, name, cooldown_seconds=cooldown)).status_code == 200
        assert (
            _org(client, method="post", json=_alert(world, f"org-{name}", cooldown_seconds=cooldown)).status_code == 200
        )
    body = {
        "filters": {"AND": [{"field": "cooldown_seconds", "operator": "gt", "value": 0}]},
        "sort": {"field": "name", "direction": "asc"},  # created last first without it
    }
    listed = client.post("/v1/alerts/list", json=body).json()
    assert [a["name"] for a in listed["results"]] == ["alpha", "charlie"] and listed["total_count"] == 2
    assert [a["name"] for a in client.request("GET", "/v1/alerts", json=body).json()["results"]] == ["alpha", "charlie"]
    for path, method in (("/list", "POST"), ("", "GET")):
        org = client.request(method, f"/v1/organizations/alerts{path}", json=body).json()
        assert [a["name"] for a in org["results"]] == ["org-alpha", "org-charlie"]
    for bad in ({"sort": {"field": "secret"}}, {"filters": {"field": "secret", "value": 1}}):
        assert_error(client.post("/v1/alerts/list", json=bad), 400)
        assert_error(_org(client, "/list", "post", json=bad), 400)
