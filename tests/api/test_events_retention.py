"""Retention of the outbox on SQLite and PostgreSQL: old finished deliveries (with their log) and
old events nothing waits for are deleted in bounded chunks; an undelivered one never is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.jobs import JobContext
from strataflow.runtime import TRIGGER_SWEEPS, Runtime
from strataflow.services.events import retention
from strataflow.statuses import Status
from strataflow.store.tables import DeliveryAttempt, OutboxEvent, WebhookDelivery
from tests.events_receiver import Receiver

SCHEMA = {"properties": {"content": {"type": "text"}}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"outbound_allow": receiver.url.split("/")[2]})


def _count(runtime: Runtime, table: Any) -> int:
    with runtime.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _setup(runtime: Runtime, client: TestClient, url: str, objects: int) -> None:
    """Objects whose events each have one delivery, never made: the dispatcher is stopped."""
    assert runtime.events is not None
    runtime.events.stop()
    hook = {
        "webhook_name": "old",
        "event_types": ["object.created"],
        "channels": [{"channel": "webhook", "configs": {"url": url}}],
    }
    assert client.post("/v1/organizations/webhooks", json=hook).status_code == 200
    assert client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": SCHEMA}).status_code == 200
    for n in range(objects):
        body = {"blobs": [{"property": "content", "type": "text", "data": f"n{n}"}]}
        assert client.post("/v1/buckets/docs/objects", json=body).status_code == 200


def test_old_finished_deliveries_and_their_events_go_in_chunks_undelivered_stay(
    runtime: Runtime, client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    _setup(runtime, client, receiver.url, 12)  # 12 object.created events, one delivery each
    long_ago = utcnow() - timedelta(days=40)
    with runtime.db.transaction() as session:
        session.execute(update(OutboxEvent).values(created_at=long_ago))
        deliveries = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_seq)))
        assert len(deliveries) == 12
        # 0-4 delivered long ago (with a log line), 5-6 given up long ago, 7 canceled (no completed_at),
        # 8 delivered yesterday, 9 still pending, 10 being delivered (leased), 11 pending for a retry.
        for row in deliveries[:5]:
            session.add(
                DeliveryAttempt(
                    delivery_id=row.delivery_id, webhook_id=row.webhook_id, attempt=1, fence_token=1, ok=True
                )
            )
        done = {**{i: Status.COMPLETED for i in range(5)}, 5: Status.FAILED, 6: Status.FAILED, 7: Status.CANCELED}
        done[8] = Status.COMPLETED
        for i, status in done.items():
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.delivery_id == deliveries[i].delivery_id)
                .values(
                    status=status,
                    created_at=long_ago,
                    completed_at=None
                    if status is Status.CANCELED
                    else (utcnow() - timedelta(days=1) if i == 8 else long_ago),
                )
            )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == deliveries[10].delivery_id)
            .values(status=Status.PROCESSING, lease_owner="x", lease_expires_at=utcnow() + timedelta(hours=1))
        )
        kept_events = {deliveries[i].event_seq for i in (8, 9, 10, 11)}
    assert _count(runtime, DeliveryAttempt) == 5

    assert retention.sweep(runtime.db, 0).total == 0  # 0 keeps everything
    # Bounded: at most 2 chunks of 3 of each kind per sweep. The first takes 6 of the 8 finished
    # deliveries, then 6 events those 6 no longer hold; the second takes the other 2 and 2.
    swept = retention.sweep(runtime.db, 30, chunk=3, max_chunks=2)
    assert (swept.deliveries, swept.events, swept.more) == (6, 6, True)
    swept = retention.sweep(runtime.db, 30, chunk=3, max_chunks=2)
    assert (swept.deliveries, swept.events, swept.more) == (2, 2, False)
    assert retention.sweep(runtime.db, 30).total == 0

    with runtime.db.read_session() as session:
        left = {(d.event_seq, d.status) for d in session.scalars(select(WebhookDelivery))}
        events = set(session.scalars(select(OutboxEvent.seq)))
    assert {seq for seq, _ in left} == kept_events == events  # every event something still points at stays
    assert sorted(s.value for _, s in left) == ["COMPLETED", "PENDING", "PENDING", "PROCESSING"]
    assert _count(runtime, DeliveryAttempt) == 0  # the log went with its deliveries

    # Anything recent stays whatever its state.
    client.post("/v1/buckets/docs/objects", json={"blobs": [{"property": "content", "type": "text", "data": "new"}]})
    assert retention.sweep(runtime.db, 30).total == 0


def test_the_trigger_loop_runs_the_sweep(
    runtime: Runtime, client: TestClient, namespace: dict[str, Any], receiver: Receiver
) -> None:
    assert retention.sweep_old_events in TRIGGER_SWEEPS
    _setup(runtime, client, receiver.url, 2)
    with runtime.db.transaction() as session:
        long_ago = utcnow() - timedelta(days=400)
        session.execute(update(OutboxEvent).values(created_at=long_ago))
        session.execute(update(WebhookDelivery).values(status=Status.COMPLETED, completed_at=long_ago))
    context = JobContext(runtime.db, runtime.blobs, runtime.settings)
    sweep = retention.RetentionSweep(every_s=3600)
    assert sweep(context) == 4  # 2 deliveries, 2 events
    assert sweep(context) == 0  # throttled until the next period
    assert _count(runtime, OutboxEvent) == 0 and _count(runtime, WebhookDelivery) == 0
