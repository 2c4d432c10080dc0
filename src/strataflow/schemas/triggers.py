"""Wire shapes of the generic triggers (TriggersApi: /v1/triggers)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import RequestModel


class CreateTriggerRequest(RequestModel):
    action_type: str = Field(min_length=1)
    action_config: dict[str, Any]
    trigger_type: str = Field(min_length=1)
    schedule_config: dict[str, Any]
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: str | None = None


class UpdateTriggerRequest(RequestModel):
    schedule_config: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: str | None = None


class ListTriggersRequest(RequestModel):
    action_type: str | None = None
    trigger_type: str | None = None
    status: str | None = None
    resource_id: str | None = None
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=1000)
    sort_by: str = "created_at"
    direction: str = "desc"
