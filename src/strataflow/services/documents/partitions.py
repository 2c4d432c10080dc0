"""Disjoint partitions of a collection's documents, so several readers can page through it at once.

A document falls in the partition its id hashes to: the first 32 bits of the id's MD5, cut
into `count` equal ranges. The hash is one LanceDB filter (`md5(document_id)` compared with
the range's bounds as hex text, which orders as the numbers do), so a partition is read
without scanning the others' rows in Python; and it never changes as documents come and go.

A partition is paged by key, not by offset: in document id order, each page's cursor holding
the partition and the last id it returned. Pages therefore never skip or repeat a document
while others are written, and there is no offset cap however deep a reader goes. The cursor
carries its partition, so a client may send the cursor alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.index.filters import sql_string
from strataflow.schemas.documents import Partition

_HASH_SPACE = 16**8  # the first 8 hex digits of the MD5


@dataclass(frozen=True)
class PartitionCursor:
    partition: Partition
    after: str | None  # the last document id already returned; None before the first page


def partition_clause(partition: Partition) -> str | None:
    """The filter selecting one partition's documents (None when there is one partition: all)."""
    low = partition.index * _HASH_SPACE // partition.count
    high = (partition.index + 1) * _HASH_SPACE // partition.count
    bounds = []
    if partition.index > 0:
        bounds.append(f"md5(document_id) >= '{low:08x}'")
    if partition.index < partition.count - 1:
        bounds.append(f"md5(document_id) < '{high:08x}'")
    return " AND ".join(bounds) or None


def keyset_clause(cursor: PartitionCursor) -> str | None:
    return f"document_id > {sql_string(cursor.after)}" if cursor.after is not None else None


def encode_partition_cursor(partition: Partition, after: str) -> str:
    token = json.dumps({"p": [partition.index, partition.count], "k": after})
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_partition_cursor(cursor: str) -> PartitionCursor | None:
    """The partition cursor `cursor` holds; None when it is a plain (offset) cursor."""
    try:
        token: Any = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (binascii.Error, ValueError):
        return None  # not ours: the offset cursor's decoder gives the error
    if not isinstance(token, dict) or "p" not in token:
        return None
    try:
        index, count = token["p"]
        after = token["k"]
        if not isinstance(after, str):
            raise TypeError(after)
        return PartitionCursor(Partition(index=index, count=count), after)
    except (TypeError, ValueError, KeyError):
        raise BadRequestError("Invalid pagination cursor", {"cursor": cursor}) from None


def resolve_partition(partition: Partition | None, cursor: str | None) -> PartitionCursor | None:
    """The partition a list request reads, from its body or its cursor; they must agree."""
    carried = decode_partition_cursor(cursor) if cursor else None
    if carried is None:
        return PartitionCursor(partition, None) if partition is not None else None
    if partition is not None and partition != carried.partition:
        raise BadRequestError(
            "The cursor belongs to another partition than the request names",
            {
                "partition": partition.model_dump(),
                "cursor_partition": carried.partition.model_dump(),
            },
        )
    return carried
