"""Request dependencies as `Annotated` aliases: sessions, the caller, the namespace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.orm import Session

from strataflow.errors import ValidationError
from strataflow.runtime import Runtime
from strataflow.schemas.common import BodyPaging
from strataflow.services.tenancy.auth import authenticate
from strataflow.services.tenancy.namespaces import resolve_scope
from strataflow.services.tenancy.scope import NamespaceScope, Principal
from strataflow.store.pagination import PageRequest

# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` in the thread pool, a
# thread hop per dependency per request, which on the polling path cost more than the query.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def write_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.session() as session:
        yield session


def read_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.read_session() as session:
        yield session


DbDep = Annotated[Session, Depends(write_session)]
ReadDbDep = Annotated[Session, Depends(read_session)]


# The caller and the namespace are read in sessions of their own, closed before the route runs.
# Were they the request's session, a route whose service opens its own transaction would hold one
# pooled connection while waiting for a second: enough concurrent requests then take every
# connection and all wait for the pool's timeout (seen with 32 clients: 30 s stalls, then 500s).


AuthorizationDep = Annotated[str | None, Header(description="Bearer <api key>")]


def get_principal(runtime: RuntimeDep, authorization: AuthorizationDep = None) -> Principal:
    with runtime.db.read_session() as session:
        return authenticate(session, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_scope(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    x_namespace: Annotated[str | None, Header(alias="X-Namespace", description="Namespace name or id")] = None,
) -> NamespaceScope:
    with runtime.db.read_session() as session:
        return resolve_scope(session, principal, x_namespace)


ScopeDep = Annotated[NamespaceScope, Depends(get_scope)]


def optional_namespace(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    x_namespace: Annotated[str | None, Header(alias="X-Namespace")] = None,
) -> NamespaceScope | None:
    """Org-scoped routes tolerate X-Namespace and narrow to it when it is sent."""
    if not x_namespace:
        return None
    with runtime.db.read_session() as session:
        return resolve_scope(session, principal, x_namespace)


OptionalScopeDep = Annotated[NamespaceScope | None, Depends(optional_namespace)]


MAX_OFFSET = 10_000  # deeper pages are a cursor's work


async def page_request(
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int | None, Query(ge=0, le=MAX_OFFSET)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    include_total: bool = False,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
    page: Annotated[int | None, Query(ge=1, le=10000)] = None,
    next_cursor: Annotated[str | None, Query(max_length=512)] = None,
    after: Annotated[str | None, Query(max_length=512)] = None,
) -> PageRequest:
    """The SDK's list paging in any of its spellings: `limit`/`offset`, `page_size`/`page` (from 1),
    and a cursor as `cursor`, `next_cursor` or `after`. The first spelling given wins."""
    size, start = _window(limit, page_size, offset, page, PageRequest())
    return PageRequest(limit=size, offset=start, cursor=cursor or next_cursor or after, include_total=include_total)


def _window(
    limit: int | None, page_size: int | None, offset: int | None, page: int | None, otherwise: PageRequest
) -> tuple[int, int]:
    """Size and start from whichever spelling is given (`limit` before `page_size`, `offset` before
    `page`), else `otherwise`'s; a start past MAX_OFFSET is a 422."""
    size = limit or page_size or otherwise.limit
    start = offset if offset is not None else (page - 1) * size if page else otherwise.offset
    if start > MAX_OFFSET:
        raise ValidationError(f"A page may start at most {MAX_OFFSET} items in", {"offset": start})
    return size, start


PageDep = Annotated[PageRequest, Depends(page_request)]


def paged(query: PageRequest, body: BodyPaging | None) -> PageRequest:
    """The page a list asks for: its body's paging where the body gives it, else the query's."""
    if body is None:
        return query
    size, start = _window(body.limit, body.page_size, body.offset, body.page, query)
    return PageRequest(limit=size, offset=start, cursor=query.cursor, include_total=query.include_total)
