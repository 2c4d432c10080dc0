"""Real rows for unit tests, made the way the services make them (through transitions.create)."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.lifecycle import progress
from strataflow.ids import new_id
from strataflow.services.tenancy.auth import create_organization
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Batch, BatchTier, Bucket, Namespace
from strataflow.transitions import create, transition


def tenant(session: Session) -> Bucket:
    """An organization, a namespace and a bucket."""
    org = create_organization(session, f"org-{secrets.token_hex(4)}")
    namespace = create(
        session,
        Namespace(namespace_id=new_id("namespace"), org_id=org.org_id, namespace_name="main"),
        Status.ACTIVE,
        "test",
    )
    session.flush()  # rows go in one at a time: the tables declare no relationships to order them by
    bucket = create(
        session,
        Bucket(
            bucket_id=new_id("bucket"),
            namespace_id=namespace.namespace_id,
            bucket_name="b",
            bucket_schema={"properties": {}},
        ),
        Status.ACTIVE,
        "test",
    )
    session.flush()
    return bucket


def submitted_batch(session: Session, bucket: Bucket, tiers: int = 1) -> Batch:
    """A batch submitted over `tiers` tiers: PENDING, tier 0 runnable with its task, as submit leaves it."""
    namespace = session.get(Namespace, bucket.namespace_id)
    assert namespace is not None
    batch = create(
        session,
        Batch(
            batch_id=new_id("batch"),
            org_id=namespace.org_id,
            namespace_id=bucket.namespace_id,
            bucket_id=bucket.bucket_id,
        ),
        Status.DRAFT,
        "test",
    )
    session.flush()
    for tier_num in range(tiers):
        create(
            session,
            BatchTier(
                batch_id=batch.batch_id,
                tier_num=tier_num,
                collection_ids=[f"col_{tier_num}"],
                source_type="bucket" if tier_num == 0 else "collection",
            ),
            Status.PENDING,
            "test",
        )
    batch.total_tiers = tiers
    session.flush()
    task = progress.open_task(session, batch, TaskType.BUCKETS_BATCHES_PROCESS, {})
    batch.task_id = task.task_id
    transition(session, batch, Status.PENDING, "submitted", submitted_at=utcnow())
    first = progress.tier_of(session, batch.batch_id, 0)
    assert first is not None
    progress.make_runnable(session, batch, first, None)
    batch.current_tier = None
    session.flush()
    return batch
