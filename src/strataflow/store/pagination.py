"""Offset and cursor pagination over a SQL query, in the contract's response shape.

A cursor is an opaque token holding the offset of the next page; clients
pass `next_cursor` back as `cursor` and need nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search

MAX_CURSOR_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class PageRequest:
    limit: int = 20
    offset: int = 0
    cursor: str | None = None
    include_total: bool = False

    @property
    def start(self) -> int:
        return decode_cursor(self.cursor) if self.cursor else self.offset


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded.encode()))["o"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequestError("Invalid pagination cursor", {"cursor": cursor}) from exc
    # Past MAX_CURSOR_OFFSET no cursor was ever issued, and the stores' 64-bit limits overflow (a 500).
    if not isinstance(offset, int) or not 0 <= offset <= MAX_CURSOR_OFFSET:
        raise BadRequestError("Invalid pagination cursor", {"cursor": cursor})
    return offset


@dataclass
class Page:
    rows: list[Any]
    pagination: dict[str, Any]
    total: int | None


def paginate(session: Session, query: Select[Any], page: PageRequest) -> Page:
    """Run `query` for one page. Totals are counted only when asked for (they cost a scan)."""
    start = page.start
    rows = list(session.scalars(query.offset(start).limit(page.limit + 1)))
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    total: int | None = None
    if page.include_total:
        total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page_number = start // page.limit + 1 if page.limit else 1
    pagination: dict[str, Any] = {
        "total": total,
        "page": page_number,
        "page_size": page.limit,
        "total_pages": (-(-total // page.limit) if total is not None and page.limit else None),
        "next_page": str(page_number + 1) if has_more else None,
        "previous_page": str(page_number - 1) if page_number > 1 else None,
        "next_cursor": encode_cursor(start + page.limit) if has_more else None,
    }
    return Page(rows=rows, pagination=pagination, total=total)


@dataclass(frozen=True)
class ListQuery:
    """What a list endpoint asks of its rows: filters, a text search, sorts (every list request
    of the contract carries these under the same names)."""

    filters: dict[str, Any] | None = None
    case_sensitive: bool = False
    search: str | None = None
    sorts: list[Any] | None = None

    @classmethod
    def of(cls, request: Any) -> ListQuery:
        """From a list request of the contract: its `sorts`, then its single `sort` where it has one."""
        single = getattr(request, "sort", None)
        sorts = [*(getattr(request, "sorts", None) or []), *([single] if single is not None else [])]
        plain = [s.model_dump() if isinstance(s, BaseModel) else s for s in sorts]
        return cls(request.filters, request.case_sensitive, request.search, plain or None)


def list_page(
    session: Session,
    query: Select[Any],
    fields: FieldMap,
    request: ListQuery,
    *,
    search_columns: tuple[Any, ...],
    tie_break: tuple[Any, ...],
    page: PageRequest,
) -> tuple[Page, int]:
    """One page of `query` narrowed by the request's filters and search, sorted by its sorts then
    by `tie_break` (newest first, then id, so pages never overlap); returns the page and the total.
    """
    clause = compile_filters(request.filters, fields, case_sensitive=request.case_sensitive)
    if clause is not None:
        query = query.where(clause)
    if request.search:
        query = query.where(text_search(request.search, *search_columns))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    for sort in request.sorts or []:
        if not isinstance(sort, dict) or not sort.get("field"):
            raise BadRequestError("Each entry of sorts needs a field", {"sorts": request.sorts})
        query = query.order_by(sort_expression(str(sort["field"]), str(sort.get("direction", "asc")), fields))
    return paginate(session, query.order_by(*tie_break), page), total
