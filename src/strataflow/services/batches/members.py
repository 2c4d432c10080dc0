"""Batch membership: add object ids in bulk, validated with one set query."""

from __future__ import annotations

import json

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from strataflow.errors import BadRequestError
from strataflow.store.tables import BatchObject

_REPORT_LIMIT = 50  # how many bad ids an error lists


def missing_object_ids(session: Session, bucket_id: str, object_ids: list[str]) -> list[str]:
    """Ids that are not objects of this bucket, in one query whatever the count.

    The whole id list travels as a single parameter (a JSON array on SQLite, an
    array on PostgreSQL) and is anti-joined against the objects table.
    """
    if not object_ids:
        return []
    if session.get_bind().dialect.name == "sqlite":
        query = text(
            "SELECT value FROM json_each(:ids) WHERE value NOT IN "
            "(SELECT object_id FROM objects WHERE bucket_id = :bucket)"
        )
        rows = session.execute(query, {"ids": json.dumps(object_ids), "bucket": bucket_id})
    else:
        query = text(
            "SELECT id FROM unnest(:ids) AS t(id) WHERE NOT EXISTS "
            "(SELECT 1 FROM objects o WHERE o.object_id = t.id AND o.bucket_id = :bucket)"
        ).bindparams(bindparam("ids", type_=ARRAY(String)))
        rows = session.execute(query, {"ids": object_ids, "bucket": bucket_id})
    return [row[0] for row in rows]


def check_objects_exist(session: Session, bucket_id: str, object_ids: list[str]) -> None:
    missing = missing_object_ids(session, bucket_id, object_ids)
    if missing:
        raise BadRequestError(
            f"{len(missing)} object id(s) are not objects of this bucket",
            {"invalid_object_ids": missing[:_REPORT_LIMIT], "invalid_count": len(missing)},
        )


def add_members(session: Session, batch_id: str, object_ids: list[str]) -> int:
    """Add ids not yet in the batch, keeping their order. Returns the member count.

    One INSERT ... SELECT over the whole id list (a single parameter), de-duplicated
    by the primary key: 100,000 ids cost one statement, not 100,000 rows built here.
    """
    start = (session.scalar(select(func.max(BatchObject.position)).where(BatchObject.batch_id == batch_id)) or 0) + 1
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            text(
                "INSERT OR IGNORE INTO batch_objects (batch_id, object_id, position) "
                "SELECT :batch, value, :start + key FROM json_each(:ids)"
            ),
            {"batch": batch_id, "start": start, "ids": json.dumps(object_ids)},
        )
    else:
        session.execute(
            text(
                "INSERT INTO batch_objects (batch_id, object_id, position) "
                "SELECT :batch, t.id, :start + t.ord FROM unnest(:ids) WITH ORDINALITY AS t(id, ord) "
                "ON CONFLICT DO NOTHING"
            ).bindparams(bindparam("ids", type_=ARRAY(String))),
            {"batch": batch_id, "start": start, "ids": object_ids},
        )
    return session.scalar(select(func.count()).where(BatchObject.batch_id == batch_id)) or 0


def member_ids(session: Session, batch_id: str) -> list[str]:
    query = select(BatchObject.object_id).where(BatchObject.batch_id == batch_id).order_by(BatchObject.position)
    return list(session.scalars(query))


def unknown_objects_filter(object_ids: list[str]) -> list[str]:
    """Cheap shape check used with skip_validation: ids must at least look like object ids."""
    bad = [oid for oid in object_ids if not isinstance(oid, str) or not oid.startswith("obj_") or len(oid) > 40]
    if bad:
        raise BadRequestError("Malformed object ids", {"invalid_object_ids": bad[:_REPORT_LIMIT]})
    return object_ids
