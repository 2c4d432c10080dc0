"""Submitting a batch: resolve the DAG, queue tier 0 (its manifest is written when it starts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.engine.manifest import manifest_key
from strataflow.errors import BadRequestError, ConflictError
from strataflow.services.batches.crud import get_batch
from strataflow.services.collections.dag import CollectionNode, resolve_tiers, scoped_tiers
from strataflow.services.collections.sources import collection_nodes
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Batch, BatchObject, BatchTier, Bucket, Task
from strataflow.transitions import create, transition


def _tier_sources(tiers: list[list[str]], nodes: dict[str, CollectionNode], tier_num: int) -> list[str]:
    return sorted({s for cid in tiers[tier_num] for s in nodes[cid].source_ids})


def _check_claimed_scope(batch: Batch, tiers: list[list[str]], claimed: list[str] | None) -> None:
    """The deprecated submit-time `collection_ids` must name the batch's scope (as given at
    creation, or its first tier): a submit that expected other collections fails closed instead
    of processing what it did not ask for."""
    if claimed is None:
        return
    accepted = [sorted(tiers[0])]
    if batch.collection_scope is not None:
        accepted.append(sorted(set(batch.collection_scope)))
    if sorted(set(claimed)) not in accepted:
        raise BadRequestError(
            "collection_ids at submit must match the collections the batch was created for "
            "(set the scope with collection_ids when creating the batch)",
            {"collection_ids": sorted(set(claimed)), "batch_collection_ids": sorted(tiers[0])},
        )


def _check_repeat(batch: Batch, claimed_scope: list[str] | None, webhook_url: str | None) -> None:
    """A repeated submit returns the first one's task; options it cannot honour any more are a 409
    rather than dropped without a word."""
    if webhook_url is not None and webhook_url != batch.webhook_url:
        raise ConflictError(
            f"Batch {batch.batch_id} was already submitted; its webhook_url is the one given then",
            {"webhook_url": batch.webhook_url},
        )
    if batch.dag_tiers:
        _check_claimed_scope(batch, batch.dag_tiers, claimed_scope)


def _plan(bucket: Bucket, batch: Batch, nodes: dict[str, CollectionNode], roots: list[str] | None) -> list[list[str]]:
    if roots is not None:
        return resolve_tiers(bucket.bucket_id, nodes.values(), roots)
    # The batch's own scope (from its creation), planned afresh on every submit and resubmit.
    scope = list(batch.collection_scope) if batch.collection_scope is not None else None
    return scoped_tiers(bucket.bucket_id, nodes.values(), scope)


def submit_batch(
    session: Session,
    blobs: BlobStore,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    roots: list[str] | None = None,
    *,
    claimed_scope: list[str] | None = None,
    webhook_url: str | None = None,
) -> Task:
    """Queue a DRAFT batch. Submitting it again returns the same task (idempotent).

    `roots` limits the DAG to those collections and what depends on them (trigger); without it
    the batch's creation scope does. `webhook_url` (already checked against the outbound guard)
    is told when the batch ends.
    """
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    if batch.status != Status.DRAFT:
        existing = session.get(Task, batch.task_id) if batch.task_id else None
        if existing is not None:
            _check_repeat(batch, claimed_scope, webhook_url)
            return existing
        raise BadRequestError(f"Batch {batch_id} is {batch.status} and cannot be submitted", {"status": batch.status})
    if batch.object_count == 0:
        raise BadRequestError("The batch holds no objects; add objects before submitting it")
    nodes = {n.collection_id: n for n in collection_nodes(session, scope.namespace_id)}
    tiers = _plan(bucket, batch, nodes, roots)
    if not tiers:
        raise BadRequestError(
            f"No enabled collection processes bucket '{bucket.bucket_name}'; create a collection on it first",
            {"bucket_id": bucket.bucket_id},
        )
    _check_claimed_scope(batch, tiers, claimed_scope)
    if webhook_url is not None:
        batch.webhook_url = webhook_url
    first_from_bucket = nodes[tiers[0][0]].source_type == "bucket"
    key = manifest_key(scope.namespace_id, batch.batch_id, 0)
    # Every tier writes its manifest when it starts (tier 0 from the member objects, see
    # `engine.tiers.bucket_rows`; later tiers from their sources' documents): blob-store writes never run
    # inside this transaction, which holds the batch row locked (on SQLite, the database).
    rows = batch.object_count if first_from_bucket else 0
    batch.dag_tiers = tiers
    batch.collection_ids = [cid for tier in tiers for cid in tier]
    batch.total_tiers = len(tiers)
    batch.manifest_key = key if first_from_bucket else None
    if roots is not None:
        batch.internal_metadata = {**(batch.internal_metadata or {}), "root_collection_ids": sorted(roots)}
    for tier_num, collection_ids in enumerate(tiers):
        from_bucket = tier_num == 0 and first_from_bucket
        tier = BatchTier(
            batch_id=batch.batch_id,
            tier_num=tier_num,
            collection_ids=collection_ids,
            source_type="bucket" if from_bucket else "collection",
            source_collection_ids=None if from_bucket else _tier_sources(tiers, nodes, tier_num),
            manifest_key=key if from_bucket else None,
            rows_total=rows if from_bucket else 0,
        )
        create(session, tier, Status.PENDING, "batch submitted")
    session.flush()
    task = lifecycle.open_task(
        session,
        batch,
        TaskType.BUCKETS_BATCHES_PROCESS,
        {
            "current_tier": None,
            "total_tiers": len(tiers),
            "collection_ids": batch.collection_ids,
            "object_count": batch.object_count,
            "sample_object_ids": list(
                session.scalars(
                    select(BatchObject.object_id)
                    .where(BatchObject.batch_id == batch.batch_id)
                    .order_by(BatchObject.position)
                    .limit(5)
                )
            ),
        },
    )
    batch.task_id = task.task_id
    transition(session, batch, Status.PENDING, "submitted", submitted_at=utcnow())
    first = lifecycle.tier_of(session, batch.batch_id, 0)
    assert first is not None
    lifecycle.make_runnable(session, batch, first, None)
    batch.current_tier = None  # the contract: null until a worker starts tier 0
    session.commit()
    return task
