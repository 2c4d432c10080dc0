"""Every machine, every (from, to) pair: the allowed moves are exactly the ones listed here.

Like Prefect's orchestration-rule tests, the expected moves are written out by hand
rather than read back from the machines, so changing a machine means changing this
table too. Then each machine runs against the real database (SQLite and PostgreSQL):
a creation and an accepted move each write their event, a rejected move writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from strataflow.errors import InvalidTransitionError
from strataflow.ids import new_id
from strataflow.services.tenancy.auth import create_organization
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import (
    Alert,
    AlertIngestClaim,
    Batch,
    BatchTier,
    Bucket,
    BucketObject,
    Namespace,
    OutboxEvent,
    RetrieverEvaluation,
    RetrieverExecution,
    StatusEvent,
    Task,
    Upload,
    Webhook,
    WebhookDelivery,
)
from strataflow.transitions import (
    ALERT_INGEST,
    BATCH,
    BUCKET,
    CLUSTER_RUN,
    DELIVERY,
    EVALUATION,
    MACHINES,
    NAMESPACE,
    OBJECT,
    RETRIEVER_EXECUTION,
    TASK,
    TIER,
    UPLOAD,
    Machine,
    Verdict,
    claim,
    create,
    release_lease,
    transition,
    try_transition,
)
from tests.unit.rows import tenant

S = Status
FINISHED = {S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}
NOTHING = None  # the "from" of a creation

EXPECTED: dict[str, dict[Status | None, set[Status]]] = {
    "task": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.IN_PROGRESS, S.PROCESSING, *FINISHED},
        S.IN_PROGRESS: {S.PENDING, S.PROCESSING, *FINISHED},
        S.PROCESSING: {S.PENDING, S.IN_PROGRESS, *FINISHED},
    },
    "batch": {
        NOTHING: {S.DRAFT},
        S.DRAFT: {S.PENDING, S.CANCELED},
        S.PENDING: {S.IN_PROGRESS, S.CANCELED, S.FAILED},
        S.IN_PROGRESS: {S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED},
        S.FAILED: {S.IN_PROGRESS, S.PENDING, S.DRAFT},
        S.COMPLETED_WITH_ERRORS: {S.IN_PROGRESS, S.PENDING, S.DRAFT},
        S.CANCELED: {S.IN_PROGRESS, S.PENDING, S.DRAFT},
        S.COMPLETED: {S.IN_PROGRESS, S.PENDING, S.DRAFT},
    },
    "tier": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.IN_PROGRESS, S.CANCELED},
        S.IN_PROGRESS: {S.PENDING, S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED},
        S.FAILED: {S.PENDING},
        S.COMPLETED_WITH_ERRORS: {S.PENDING},
        S.COMPLETED: {S.PENDING},
        S.CANCELED: {S.PENDING},
    },
    "upload": {
        NOTHING: {S.PENDING, S.SKIPPED},
        S.PENDING: {S.PROCESSING, S.COMPLETED, S.FAILED, S.CANCELED},
        S.PROCESSING: {S.COMPLETED, S.FAILED},
    },
    "bucket": {NOTHING: {S.ACTIVE}, S.ACTIVE: {S.ARCHIVED}},
    "namespace": {NOTHING: {S.ACTIVE}, S.ACTIVE: {S.ARCHIVED}},
    "object": {NOTHING: {S.DRAFT}},
    "cluster_run": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.PROCESSING, S.FAILED, S.CANCELED},
        S.PROCESSING: {S.PENDING, S.COMPLETED, S.FAILED, S.CANCELED},
    },
    "retriever_execution": {NOTHING: {S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED}},
    "evaluation": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.IN_PROGRESS, S.FAILED},
        S.IN_PROGRESS: {S.COMPLETED, S.FAILED},
    },
    "webhook_delivery": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.PROCESSING, S.CANCELED},
        S.PROCESSING: {S.PENDING, S.COMPLETED, S.FAILED, S.CANCELED},
    },
    "alert_ingest": {
        NOTHING: {S.PENDING},
        S.PENDING: {S.PROCESSING},
        S.PROCESSING: {S.PENDING, S.COMPLETED},
        S.COMPLETED: {S.PENDING},
    },
}
ALL_MACHINES = [
    TASK,
    BATCH,
    TIER,
    UPLOAD,
    BUCKET,
    NAMESPACE,
    OBJECT,
    CLUSTER_RUN,
    RETRIEVER_EXECUTION,
    EVALUATION,
    DELIVERY,
    ALERT_INGEST,
]
PAIRS = [(m, current, target) for m in ALL_MACHINES for current in [NOTHING, *Status] for target in Status]


def test_every_table_with_a_status_has_a_machine() -> None:
    from strataflow.store.tables import Base, Trigger, TriggerFiring

    with_status = {mapper.class_ for mapper in Base.registry.mappers if "status" in mapper.columns}
    # Triggers keep the contract's lower-case states (transitions.move_trigger, tested below); a
    # firing's status is the outcome it was recorded with, never changed after.
    assert with_status - {Trigger, TriggerFiring} == set(MACHINES)
    assert {m.kind for m in ALL_MACHINES} == set(EXPECTED)


@pytest.mark.parametrize(
    ("machine", "current", "target"),
    PAIRS,
    ids=[f"{m.kind}:{c.value if c else 'nothing'}->{t.value}" for m, c, t in PAIRS],
)
def test_each_pair_is_allowed_exactly_when_listed(machine: Machine, current: Status | None, target: Status) -> None:
    assert machine.allows(current, target) == (target in EXPECTED[machine.kind].get(current, set()))


@pytest.mark.parametrize("machine", ALL_MACHINES, ids=[m.kind for m in ALL_MACHINES])
def test_finished_states_only_leave_by_the_listed_retry_edges(machine: Machine) -> None:
    for current in FINISHED:
        leaving = {t for t in Status if t != current and machine.allows(current, t)}
        # an alert's ingest claim is re-armed (COMPLETED -> PENDING) when documents are written again
        edges = {"batch": {S.IN_PROGRESS, S.PENDING, S.DRAFT}, "tier": {S.PENDING}, "alert_ingest": {S.PENDING}}
        retry_edges = edges.get(machine.kind, set())
        assert leaving <= retry_edges, (machine.kind, current, leaving)


# -- against the database --------------------------------------------------------------------

Maker = Callable[[Session, Status], Any]


def _namespace(session: Session, status: Status) -> Namespace:
    org = create_organization(session, f"o-{new_id('namespace')}")
    session.flush()
    return create(
        session, Namespace(namespace_id=new_id("namespace"), org_id=org.org_id, namespace_name="n"), status, "test"
    )


def _bucket(session: Session, status: Status) -> Bucket:
    namespace = _namespace(session, S.ACTIVE)
    session.flush()
    return create(
        session,
        Bucket(bucket_id=new_id("bucket"), namespace_id=namespace.namespace_id, bucket_name="b"),
        status,
        "test",
    )


def _object(session: Session, status: Status) -> BucketObject:
    bucket = tenant(session)
    return create(
        session,
        BucketObject(object_id=new_id("object"), bucket_id=bucket.bucket_id, namespace_id=bucket.namespace_id),
        status,
        "test",
    )


def _batch(session: Session, status: Status) -> Batch:
    bucket = tenant(session)
    namespace = session.get(Namespace, bucket.namespace_id)
    assert namespace is not None
    return create(
        session,
        Batch(
            batch_id=new_id("batch"),
            org_id=namespace.org_id,
            namespace_id=bucket.namespace_id,
            bucket_id=bucket.bucket_id,
        ),
        status,
        "test",
    )


def _tier(session: Session, status: Status) -> BatchTier:
    batch = _batch(session, S.DRAFT)
    session.flush()
    return create(session, BatchTier(batch_id=batch.batch_id, tier_num=0, collection_ids=[]), status, "test")


def _task(session: Session, status: Status) -> Task:
    org = create_organization(session, f"o-{new_id('task')}")
    session.flush()
    return create(
        session, Task(task_id=new_id("task"), org_id=org.org_id, task_type="api_buckets_delete"), status, "test"
    )


def _upload(session: Session, status: Status) -> Upload:
    bucket = tenant(session)
    return create(
        session,
        Upload(
            upload_id=new_id("upload"),
            bucket_id=bucket.bucket_id,
            namespace_id=bucket.namespace_id,
            filename="a.txt",
            content_type="text/plain",
            s3_key=f"k/{new_id('upload')}",
            presigned_url_expiration=60,
            expires_at=tier_lease(),
        ),
        status,
        "test",
    )


def _execution(session: Session, status: Status) -> RetrieverExecution:
    bucket = tenant(session)
    row = RetrieverExecution(execution_id=new_id("execution"), namespace_id=bucket.namespace_id)
    return create(session, row, status, "test")


def _evaluation(session: Session, status: Status) -> RetrieverEvaluation:
    bucket = tenant(session)
    row = RetrieverEvaluation(
        evaluation_id=new_id("evaluation"),
        namespace_id=bucket.namespace_id,
        retriever_id=new_id("retriever"),
        dataset_id=new_id("dataset"),
        dataset_name="d",
    )
    return create(session, row, status, "test")


def _delivery(session: Session, status: Status) -> WebhookDelivery:
    org = create_organization(session, f"o-{new_id('task')}")
    session.flush()
    hook = Webhook(webhook_id=f"wh_{new_id('task')[-16:]}", org_id=org.org_id, webhook_name="h", channels=[])
    event = OutboxEvent(
        event_id=new_id("task"),
        org_id=org.org_id,
        event_type="object.created",
        resource_type="object",
        operation="insert",
    )
    session.add_all([hook, event])
    session.flush()
    row = WebhookDelivery(
        delivery_id=new_id("task"), webhook_id=hook.webhook_id, org_id=org.org_id, event_seq=event.seq
    )
    return create(session, row, status, "test")


def _alert_claim(session: Session, status: Status) -> AlertIngestClaim:
    bucket = tenant(session)
    namespace = session.get(Namespace, bucket.namespace_id)
    assert namespace is not None
    alert = Alert(alert_id=new_id("alert"), org_id=namespace.org_id, namespace_id=namespace.namespace_id, name="a")
    session.add(alert)
    session.flush()
    return create(session, AlertIngestClaim(alert_id=alert.alert_id), status, "test")


MAKERS: dict[str, tuple[Machine, Maker]] = {
    "alert_ingest": (ALERT_INGEST, _alert_claim),
    "retriever_execution": (RETRIEVER_EXECUTION, _execution),
    "evaluation": (EVALUATION, _evaluation),
    "webhook_delivery": (DELIVERY, _delivery),
    "task": (TASK, _task),
    "batch": (BATCH, _batch),
    "tier": (TIER, _tier),
    "upload": (UPLOAD, _upload),
    "bucket": (BUCKET, _bucket),
    "namespace": (NAMESPACE, _namespace),
    "object": (OBJECT, _object),
}


def _events(session: Session, machine: Machine, entity: Any) -> list[tuple[str | None, str, str]]:
    rows = session.execute(
        select(StatusEvent.from_status, StatusEvent.to_status, StatusEvent.reason)
        .where(StatusEvent.entity_type == machine.kind, StatusEvent.entity_id == getattr(entity, machine.id_attribute))
        .order_by(StatusEvent.event_id)
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_each_machine_in_the_database(db: Database, kind: str) -> None:
    machine, make = MAKERS[kind]
    first = min(machine.initial)
    with db.transaction() as session:
        entity = make(session, first)
        session.flush()
        assert _events(session, machine, entity) == [(None, first.value, "test")]
        with pytest.raises(InvalidTransitionError):
            create(session, type(entity)(), S.UNKNOWN, "never")  # no machine creates into UNKNOWN
        for target in Status:
            if target == first:
                assert try_transition(session, entity, target, "again") is Verdict.UNCHANGED
            elif not machine.allows(first, target):
                assert try_transition(session, entity, target, "refused") is Verdict.REJECTED
                with pytest.raises(InvalidTransitionError):
                    transition(session, entity, target, "refused")
        assert entity.status is first
        assert _events(session, machine, entity) == [(None, first.value, "test")]  # refusals wrote nothing
        allowed = sorted(EXPECTED[kind].get(first, set()))
        if allowed:
            assert try_transition(session, entity, allowed[0], "moved") is Verdict.ACCEPTED
            assert _events(session, machine, entity)[-1] == (first.value, allowed[0].value, "moved")
        identity = inspect(entity).identity
    with db.read_session() as session:  # the stored column reads back as the enum
        stored = session.get(type(entity), identity)
        assert stored is not None and isinstance(stored.status, Status)
        assert stored.status is (allowed[0] if allowed else first)


def test_details_go_with_an_accepted_move_only(db: Database) -> None:
    with db.transaction() as session:
        tier = _tier(session, S.PENDING)
        session.flush()
        before = session.scalar(select(func.count()).select_from(StatusEvent))
        assert claim(session, tier, S.IN_PROGRESS, "host-a:1", tier_lease(), "claimed") is Verdict.ACCEPTED
        assert (tier.lease_owner, tier.attempts) == ("host-a:1", 1) and tier.started_at is not None
        started = tier.started_at
        assert try_transition(session, tier, S.DRAFT, "refused", lease_owner="x") is Verdict.REJECTED
        assert tier.lease_owner == "host-a:1"  # a refused move sets no detail
        release_lease(tier)
        assert tier.lease_owner is None and tier.lease_expires_at is not None
        assert transition(session, tier, S.PENDING, "handed back") is True
        assert claim(session, tier, S.IN_PROGRESS, "host-b:2", tier_lease(), "claimed again") is Verdict.ACCEPTED
        assert (tier.attempts, tier.started_at) == (2, started)  # started once, attempted twice
        assert session.scalar(select(func.count()).select_from(StatusEvent)) == (before or 0) + 3
        with pytest.raises(TypeError):  # a detail the machine does not govern
            try_transition(session, tier, S.COMPLETED, "done", verified_at=None)


def tier_lease() -> Any:
    from datetime import timedelta

    from strataflow.clock import utcnow

    return utcnow() + timedelta(seconds=30)


TRIGGER_STATES = [None, "active", "paused", "disabled", "failed"]
EXPECTED_TRIGGER = {
    None: {"active", "paused", "disabled"},
    "active": {"paused", "disabled", "failed"},
    "paused": {"active", "disabled"},
    "disabled": {"active", "paused"},
    "failed": {"active", "paused", "disabled"},
}


@pytest.mark.parametrize(("current", "target"), [(c, t) for c in TRIGGER_STATES for t in TRIGGER_STATES[1:] if c != t])
def test_each_trigger_move_is_allowed_exactly_when_listed(current: str | None, target: str) -> None:
    from strataflow.store.tables import StatusEvent, Trigger
    from strataflow.transitions import Verdict, move_trigger

    trigger = Trigger(trigger_id="trig_x", status=current)
    session = Session()  # nothing is flushed: the move only adds its event to the session
    if target in EXPECTED_TRIGGER[current]:
        assert move_trigger(session, trigger, target, "test") is Verdict.ACCEPTED
        assert trigger.status == target
        assert [type(row) for row in session.new] == [StatusEvent]
    else:
        with pytest.raises(InvalidTransitionError):
            move_trigger(session, trigger, target, "test")
        assert trigger.status == current and not session.new
