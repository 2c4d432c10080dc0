"""Webhooks over HTTP against a real local receiver, on SQLite and PostgreSQL: what is refused at
creation, what a delivery carries (signature, template, headers), retries, delivery health and
the automatic pause, and two dispatchers sharing one outbox."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.dispatcher import EventDispatcher
from strataflow.runtime import Runtime
from strataflow.statuses import Status
from strataflow.store.tables import OutboxEvent, Webhook, WebhookDelivery
from tests.events_receiver import Receiver, verify
from tests.helpers import assert_error

SECRET = "whsec_test_0123456789"
SCHEMA = {"properties": {"content": {"type": "text"}, "title": {"type": "string"}}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    """Loopback is refused unless allowed: allow this receiver alone. Fast retries, early pause."""
    return settings.model_copy(
        update={
            "outbound_allow": receiver.url.split("/")[2],
            "events_retry_base_s": 0.05,
            "events_retry_max_s": 0.2,
            "events_poll_interval_s": 0.05,
            "events_pause_after_failures": 4,
            "events_max_attempts": 10,
        }
    )


def _hook(url: str, **config: Any) -> dict[str, Any]:
    return {
        "webhook_name": "ingest",
        "event_types": ["object.created", "object.deleted"],
        "channels": [{"channel": "webhook", "configs": {"url": url, **config}}],
    }


def _bucket(client: TestClient) -> None:
    response = client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": SCHEMA})
    assert response.status_code == 200, response.text


def _object(client: TestClient, title: str) -> dict[str, Any]:
    body = {"blobs": [{"property": "content", "type": "text", "data": "x"}], "metadata": {"title": title}}
    response = client.post("/v1/buckets/docs/objects", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_crud_keeps_the_secret_hidden_and_kept(client: TestClient, receiver: Receiver) -> None:
    created = client.post("/v1/organizations/webhooks", json=_hook(receiver.url, signing_secret=SECRET))
    assert created.status_code == 200, created.text
    hook = created.json()
    assert hook["webhook_id"].startswith("wh_") and len(hook["webhook_id"]) == 19
    assert hook["channels"][0]["configs"]["signing_secret"] == "redacted"
    assert SECRET not in created.text
    got = client.get(f"/v1/organizations/webhooks/{hook['webhook_id']}").json()
    assert got["event_types"] == ["object.created", "object.deleted"] and got["is_active"] is True

    listed = client.post("/v1/organizations/webhooks/list", json={"event_type": "object.deleted"}).json()
    assert listed["total"] == 1 and listed["results"][0]["webhook_id"] == hook["webhook_id"]
    assert client.post("/v1/organizations/webhooks/list", json={"event_type": "taxonomy.created"}).json()["total"] == 0
    assert client.post("/v1/organizations/webhooks/list", json={"is_active": False}).json()["total"] == 0

    renamed = {**_hook(receiver.url, signing_secret="redacted"), "webhook_name": "renamed"}
    put = client.put(f"/v1/organizations/webhooks/{hook['webhook_id']}", json=renamed)
    assert put.status_code == 200 and put.json()["webhook_name"] == "renamed"
    assert put.json()["channels"][0]["configs"]["signing_secret"] == "redacted"  # kept
    cleared = client.put(
        f"/v1/organizations/webhooks/{hook['webhook_id']}", json=_hook(receiver.url, signing_secret="")
    )
    assert cleared.json()["channels"][0]["configs"]["signing_secret"] is None

    assert client.delete(f"/v1/organizations/webhooks/{hook['webhook_id']}").status_code == 204
    assert_error(client.get(f"/v1/organizations/webhooks/{hook['webhook_id']}"), 404)


BAD_WEBHOOKS: list[tuple[dict[str, Any], str]] = [
    ({"event_types": ["object.created", "object.exploded"]}, "object.exploded"),
    ({"channels": [{"channel": "email", "configs": {"to": ["a@example.com"]}}]}, "email"),
    ({"channels": [{"channel": "slack", "configs": {"channel_id": "C1"}}]}, "slack"),
    ({"url": "ftp://example.com/hook"}, "refused"),
    ({"url": "http://10.1.2.3/hook"}, "refused"),
    ({"url": "http://127.0.0.1:1/hook"}, "refused"),
    ({"payload_template": {"text": "{{ event.event_type "}}, "does not render"),
    ({"payload_template": {"text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}}, "does not render"),
    ({"payload_template": {"text": "{{ 'a' * 100000000 }}"}}, "does not render"),
    ({"headers": {"X-Mixpeek-Signature": "forged"}}, "set by the delivery"),
    ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "cannot be sent"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 3600}, "timeout"),
]


def test_bad_webhooks_are_refused_and_nothing_is_written(client: TestClient, receiver: Receiver) -> None:
    for change, words in BAD_WEBHOOKS:
        body = _hook(receiver.url)
        for key, value in change.items():
            if key in {"url", "payload_template", "headers", "timeout"}:
                body["channels"][0]["configs"][key] = value
            else:
                body[key] = value
        error = assert_error(client.post("/v1/organizations/webhooks", json=body), 400)
        assert words in error["error"]["message"], (change, error)
    assert client.post("/v1/organizations/webhooks/list", json={}).json()["total"] == 0


def test_a_delivery_is_signed_templated_and_logged(
    client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    template = {"text": "{{ event_type }} {{ payload.metadata.title }}", "id": "{{ event_id }}", "fixed": 3}
    hook = client.post(
        "/v1/organizations/webhooks",
        json=_hook(receiver.url, signing_secret=SECRET, headers={"X-Team": "search"}, payload_template=template),
    ).json()
    _bucket(client)
    obj = _object(client, "first")
    got = receiver.wait_for(1)[0]
    assert verify(SECRET, got)
    assert not verify("another secret", got)
    assert got.headers["x-team"] == "search" and got.headers["x-mixpeek-event"] == "object.created"
    assert got.json["text"] == "object.created first" and got.json["fixed"] == 3
    assert got.json["id"] == got.headers["x-mixpeek-event-id"]

    feed = client.get("/v1/events", params={"event_type": "object.created"}).json()
    assert [e["resource_id"] for e in feed["results"]] == [obj["object_id"]]
    assert feed["results"][0]["payload"]["metadata"] == {"title": "first"}
    assert feed["results"][0]["event_id"] == got.headers["x-mixpeek-event-id"]

    log = _wait(
        lambda: (
            (r := client.get(f"/v1/organizations/webhooks/{hook['webhook_id']}/deliveries").json()["results"])
            and r[0]["status"] == "COMPLETED"
            and r
        )
    )
    assert log[0]["log"][0]["ok"] is True and log[0]["log"][0]["status_code"] == 200


def test_a_failing_receiver_gets_the_event_again_and_health_recovers(
    client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    receiver.behaviour.fail_first = 2
    hook = client.post("/v1/organizations/webhooks", json=_hook(receiver.url, signing_secret=SECRET)).json()
    _bucket(client)
    _object(client, "again")
    requests = receiver.wait_for(3)
    assert len({r.headers["x-mixpeek-event-id"] for r in requests}) == 1
    assert [r.headers["x-mixpeek-delivery-attempt"] for r in requests] == ["1", "2", "3"]
    assert all(verify(SECRET, r) for r in requests)
    url = f"/v1/organizations/webhooks/{hook['webhook_id']}/deliveries"
    log = _wait(lambda: (r := client.get(url).json()["results"]) and r[0]["status"] == "COMPLETED" and r)
    assert [(a["ok"], a["status_code"]) for a in log[0]["log"]] == [(False, 500), (False, 500), (True, 200)]
    assert client.get(f"/v1/organizations/webhooks/{hook['webhook_id']}").json()["delivery_health"] is None


def test_a_run_of_failures_pauses_the_webhook_and_resuming_delivers(
    client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    receiver.behaviour.always_fail = True
    hook = client.post("/v1/organizations/webhooks", json=_hook(receiver.url)).json()
    _bucket(client)
    _object(client, "down")
    url = f"/v1/organizations/webhooks/{hook['webhook_id']}"
    paused = _wait(lambda: (h := client.get(url).json())["is_active"] is False and h)
    health = paused["delivery_health"]
    assert health["consecutive_failures"] == 4 and health["paused_at"] and "HTTP 500" in health["last_failure_cause"]
    assert health["first_failure_at"] <= health["last_failure_at"]
    seen = len(receiver.received)
    _object(client, "while paused")  # a paused webhook is sent nothing
    assert client.get(f"{url}/deliveries").json()["results"][0]["status"] == "PENDING"

    receiver.behaviour.always_fail = False
    resumed = client.put(url, json={**_hook(receiver.url), "is_active": True}).json()
    assert resumed["is_active"] is True and resumed["delivery_health"] is None
    requests = receiver.wait_for(seen + 1)
    assert requests[-1].json["payload"]["metadata"] == {"title": "down"}  # the pending delivery, not lost


def test_two_dispatchers_never_deliver_one_attempt_at_once(
    runtime: Runtime, client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    assert runtime.events is not None
    runtime.events.stop()  # only the two below deliver
    receiver.behaviour.hold_s = 0.02
    client.post("/v1/organizations/webhooks", json=_hook(receiver.url, signing_secret=SECRET))
    _bucket(client)
    for n in range(12):
        _object(client, f"o{n}")
    box, settings = runtime.secret_box, runtime.settings.model_copy(update={"events_dispatch_workers": 3})
    dispatchers = [EventDispatcher(runtime.db, runtime.outbound, box, settings, owner=f"d{i}") for i in range(2)]
    try:
        for dispatcher in dispatchers:
            dispatcher.start()
        requests = receiver.wait_for(12)
        time.sleep(0.3)  # anything doubled would have arrived by now
    finally:
        for dispatcher in dispatchers:
            dispatcher.close()
    per_delivery = Counter(r.headers["x-mixpeek-delivery-id"] for r in receiver.received)
    assert len(per_delivery) == 12 and set(per_delivery.values()) == {1}
    assert receiver.overlaps == 0 and len(requests) == 12


def test_a_taken_over_claim_cannot_record_its_outcome(
    runtime: Runtime, client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    assert runtime.events is not None
    runtime.events.stop()
    client.post("/v1/organizations/webhooks", json=_hook(receiver.url))
    _bucket(client)
    _object(client, "contested")
    first = EventDispatcher(runtime.db, runtime.outbound, runtime.secret_box, runtime.settings, owner="first")
    second = EventDispatcher(runtime.db, runtime.outbound, runtime.secret_box, runtime.settings, owner="second")
    try:
        stale = first.claim()
        assert stale is not None
        assert second.claim() is None  # leased: not claimable while the lease holds
        with runtime.db.transaction() as session:  # the first holder stalls past its lease
            session.execute(update(WebhookDelivery).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        fresh = second.claim()
        assert fresh is not None and fresh.delivery_id == stale.delivery_id and fresh.token == stale.token + 1
        assert first.record(stale, first.attempt(stale)) is False  # fenced: writes nothing
        assert second.record(fresh, second.attempt(fresh)) is True
    finally:
        first.close()
        second.close()
    with runtime.db.read_session() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        assert row.status is Status.COMPLETED and row.attempts == 2


def test_events_commit_with_their_change(runtime: Runtime, client: TestClient, namespace: dict[str, Any]) -> None:
    """A refused change records no event; each accepted one records exactly one, in order."""
    _bucket(client)
    obj = _object(client, "a")
    assert client.post("/v1/buckets/docs/objects", json={"blobs": [], "metadata": {"title": 5}}).status_code >= 400
    client.patch(f"/v1/buckets/docs/objects/{obj['object_id']}", json={"metadata": {"title": "b"}})
    client.delete(f"/v1/buckets/docs/objects/{obj['object_id']}")
    with runtime.db.read_session() as session:
        types = [e.event_type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))]
        assert session.scalars(select(Webhook)).all() == []
    assert types == ["object.created", "object.updated", "object.deleted"]
    page = client.get("/v1/events", params={"limit": 2}).json()
    assert page["has_more"] is True and len(page["results"]) == 2
    rest = client.get("/v1/events", params={"cursor": page["next_cursor"]}).json()
    assert [e["event_type"] for e in rest["results"]] == ["object.deleted"] and rest["has_more"] is False
    assert_error(client.get("/v1/events", params={"event_type": "nope.nope"}), 400)


def test_deliveries_are_claimed_in_groups_and_unattempted_claims_are_handed_back(
    runtime: Runtime, client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    assert runtime.events is not None
    runtime.events.stop()
    client.post("/v1/organizations/webhooks", json=_hook(receiver.url, signing_secret=SECRET))
    _bucket(client)
    for n in range(5):
        _object(client, f"g{n}")
    first = EventDispatcher(runtime.db, runtime.outbound, runtime.secret_box, runtime.settings, owner="first")
    second = EventDispatcher(runtime.db, runtime.outbound, runtime.secret_box, runtime.settings, owner="second")
    try:
        group = first.claim_many(3)
        assert len(group) == 3 and len({c.delivery_id for c in group}) == 3
        leases = [c.lease_until for c in group]
        assert all(a is not None and b is not None and a < b for a, b in pairwise(leases))
        rest = second.claim_many(10)  # the others only: a claimed delivery is not claimed twice
        assert len(rest) == 2 and not {c.delivery_id for c in rest} & {c.delivery_id for c in group}
        assert first.hand_back(group) == 3  # not attempted: due again, the attempt not counted
        assert second.record_many([(c, second.attempt(c)) for c in rest]) == [True, True]
        assert first.run_pending() == 3
    finally:
        first.close()
        second.close()
    requests = receiver.wait_for(5)
    assert Counter(r.headers["x-mixpeek-delivery-id"] for r in requests).most_common(1)[0][1] == 1
    assert {r.headers["x-mixpeek-delivery-attempt"] for r in requests} == {"1"}
    assert all(verify(SECRET, r) for r in requests)
    with runtime.db.read_session() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert [r.status for r in rows] == [Status.COMPLETED] * 5 and {r.attempts for r in rows} == {1}
