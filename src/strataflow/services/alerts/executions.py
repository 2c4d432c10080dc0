"""Reading an alert's executions: one, all of a namespace, all of one alert, the latest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from strataflow.errors import not_found
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.pagination import PageRequest, paginate
from strataflow.store.tables import AlertExecution


def list_executions(
    session: Session, scope: NamespaceScope | None, alert_id: str | None, page: PageRequest
) -> tuple[list[AlertExecution], dict[str, Any], int]:
    """A namespace's executions (of one alert, or all); `scope` None: one alert's, wherever they ran."""
    query: Select[Any] = select(AlertExecution)
    if scope is not None:
        query = query.where(AlertExecution.namespace_id == scope.namespace_id)
    if alert_id is not None:
        query = query.where(AlertExecution.alert_id == alert_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    result = paginate(session, query.order_by(AlertExecution.executed_at.desc(), AlertExecution.execution_id), page)
    return result.rows, {**result.pagination, "total": total}, total


def get_execution(session: Session, scope: NamespaceScope, execution_id: str) -> AlertExecution:
    row = session.scalar(
        select(AlertExecution).where(
            AlertExecution.execution_id == execution_id, AlertExecution.namespace_id == scope.namespace_id
        )
    )
    if row is None:
        raise not_found("Alert execution", execution_id)
    return row


def latest_execution(session: Session, alert_id: str) -> AlertExecution:
    row = session.scalar(
        select(AlertExecution)
        .where(AlertExecution.alert_id == alert_id)
        .order_by(AlertExecution.executed_at.desc(), AlertExecution.execution_id)
        .limit(1)
    )
    if row is None:
        raise not_found("Execution of alert", alert_id)
    return row
