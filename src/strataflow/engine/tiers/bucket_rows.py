"""Tier 0's input rows: one per member object of a batch, for its manifest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from strataflow.engine.manifest import ManifestRow
from strataflow.engine.tiers.records import object_record
from strataflow.store.db import Database
from strataflow.store.tables import Batch, BatchObject, BucketObject

_MEMBER_CHUNK = 2_000


def object_rows(db: Database, batch: Batch) -> Iterator[ManifestRow]:
    """Tier-0 rows: one per member object, read from the database chunk by chunk, each chunk in a
    read session of its own that closes before its rows are handed on (the consumer writes them
    to blob storage, and no session may wait on that).

    A member that is no longer an object of the bucket (deleted since, or added
    with skip_validation) still gets a row, marked missing, so that the tier
    reports it as a failed document instead of silently dropping it.
    """
    last = -1
    while True:
        with db.read_session() as session:
            members = session.execute(
                select(BatchObject.position, BatchObject.object_id)
                .where(BatchObject.batch_id == batch.batch_id, BatchObject.position > last)
                .order_by(BatchObject.position)
                .limit(_MEMBER_CHUNK)
            ).all()
            if not members:
                return
            ids = [oid for _, oid in members]
            found = {
                o.object_id: asdict(object_record(o))
                for o in session.scalars(
                    select(BucketObject).where(
                        BucketObject.bucket_id == batch.bucket_id, BucketObject.object_id.in_(ids)
                    )
                )
            }
        last = members[-1][0]
        for object_id in ids:
            payload: dict[str, Any] = found.get(object_id) or {"missing": True}
            yield ManifestRow(
                row_id=object_id,
                root_object_id=object_id,
                root_bucket_id=batch.bucket_id,
                source_type="bucket",
                source_object_id=object_id,
                payload=payload,
                lineage_path=batch.bucket_id,
            )
