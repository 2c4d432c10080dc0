"""Task wire models."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from strataflow.schemas.common import PaginationResponse, RequestModel, ResponseModel, SortOption
from strataflow.statuses import Status, TaskType


class TaskResponse(ResponseModel):
    task_id: str
    task_type: TaskType
    status: Status
    inputs: list[Any] | None = None
    outputs: list[Any] | None = None
    additional_data: dict[str, Any] | None = None
    error: str | None = None


class ListTasksRequest(RequestModel):
    status: Status | None = None
    task_type: TaskType | None = None
    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    search: str | None = None

    @field_validator("task_type", "status", mode="before")
    @classmethod
    def _case_fold(cls, value: Any) -> Any:
        """The spec's own example writes task types upper-case; the enum is lower-case."""
        if isinstance(value, str):
            return value.lower() if value.lower() in TaskType._value2member_map_ else value.upper()
        return value


class ListTasksResponse(ResponseModel):
    results: list[TaskResponse]
    pagination: PaginationResponse
