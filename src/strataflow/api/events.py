"""The organisation's change feed (EventsApi.list_events): every recorded event, oldest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from strataflow.api.deps import OptionalScopeDep, PrincipalDep, ReadDbDep
from strataflow.errors import BadRequestError
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.events import feed
from strataflow.services.events.catalog import KNOWN
from strataflow.services.tenancy.namespaces import resolve_scope

router = APIRouter(prefix="/v1/events", tags=["Events"], responses=ERROR_RESPONSES)


@router.get("")
def list_events(
    principal: PrincipalDep,
    session: ReadDbDep,
    header_scope: OptionalScopeDep,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    next_cursor: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=256)] = None,
    namespace_id: Annotated[str | None, Query(max_length=128)] = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    if event_type is not None and event_type not in KNOWN:
        raise BadRequestError(f"Unknown event type '{event_type}'", {"event_type": event_type})
    scope_id = header_scope.namespace_id if header_scope is not None else None
    if namespace_id:
        asked = resolve_scope(session, principal, namespace_id).namespace_id
        if scope_id is not None and asked != scope_id:
            raise BadRequestError("namespace_id and X-Namespace name different namespaces")
        scope_id = asked
    return feed.list_events(
        session, principal.org_id, scope_id, event_type, cursor or next_cursor or after, limit or page_size or 100
    )
