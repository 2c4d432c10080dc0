"""Shapes shared by every resource: errors, pagination, list requests, deletes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from strataflow.statuses import Status


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are ignored (newer SDKs send more)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BodyPaging(RequestModel):
    """A list request's paging in its body, as the SDK's list models carry it (`limit`/`page_size`,
    `offset`/`page` from 1); given here, it wins over the query string's (`api.deps.paged`)."""

    limit: int | None = Field(default=None, ge=1, le=1000)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    offset: int | None = Field(default=None, ge=0)
    page: int | None = Field(default=None, ge=1)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ErrorDetail(BaseModel):
    message: str
    type: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    success: bool = False
    status: int
    error: ErrorDetail


class PaginationResponse(BaseModel):
    total: int | None = None
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_page: str | None = None
    previous_page: str | None = None
    next_cursor: str | None = None


class GenericDeleteResponse(BaseModel):
    message: str = "Successfully deleted"
    success: bool = True


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# "ASC" and "desc" alike; an enum in the OpenAPI document (a portable schema, unlike a (?i) pattern).
SortDirection = Annotated[Literal["asc", "desc"], BeforeValidator(_lower)]


class SortOption(RequestModel):
    field: str = Field(min_length=1)
    direction: SortDirection = "asc"


class AsyncTaskAccepted(ResponseModel):
    """Answer of an asynchronous delete: the task to poll."""

    task_id: str
    status: Status = Status.PENDING
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 500)
}
