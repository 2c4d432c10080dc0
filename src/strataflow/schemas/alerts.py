"""Wire shapes of alerts (the contract's CreateAlertRequest, PatchAlertRequest, ListAlertsRequest)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import RequestModel, SortOption


class AlertThresholdRequest(RequestModel):
    field: str = Field(min_length=1, max_length=256)
    operator: str
    value: Any = None


class NotificationChannelRequest(RequestModel):
    channel_type: str = Field(min_length=1)
    channel_id: str | None = None
    config: dict[str, Any] | None = None


class NotificationConfigRequest(RequestModel):
    channels: list[NotificationChannelRequest] = Field(min_length=1, max_length=20)
    include_matches: bool = True
    include_scores: bool = True
    template_id: str | None = None


class SystemConditionRequest(RequestModel):
    type: str = Field(min_length=1)
    params: dict[str, Any] | None = None


class NamespaceSelectorRequest(RequestModel):
    mode: str | None = None
    namespace_ids: list[str] | None = None


class CreateAlertRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    source: str | None = None
    retriever_id: str | None = None
    trigger_on: str | None = None
    min_count: int | None = Field(default=None, ge=1)
    threshold: AlertThresholdRequest | None = None
    inputs: dict[str, Any] | None = None
    cooldown_seconds: int = Field(default=0, ge=0, le=2_592_000)
    renotify_interval_seconds: int | None = Field(default=None, ge=60, le=2_592_000)
    system_condition: SystemConditionRequest | None = None
    namespace_selector: NamespaceSelectorRequest | None = None
    notification_config: NotificationConfigRequest
    enabled: bool = True
    metadata: dict[str, Any] | None = None


class PatchAlertRequest(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    retriever_id: str | None = None
    trigger_on: str | None = None
    min_count: int | None = Field(default=None, ge=1)
    threshold: AlertThresholdRequest | None = None
    inputs: dict[str, Any] | None = None
    cooldown_seconds: int | None = Field(default=None, ge=0, le=2_592_000)
    renotify_interval_seconds: int | None = Field(default=None, ge=60, le=2_592_000)
    system_condition: SystemConditionRequest | None = None
    namespace_selector: NamespaceSelectorRequest | None = None
    notification_config: NotificationConfigRequest | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


class ListAlertsRequest(RequestModel):
    search: str | None = Field(default=None, max_length=200)
    filters: dict[str, Any] | None = None  # the lists' filter language
    sort: SortOption | None = None
    case_sensitive: bool = False


class ExecuteAlertRequest(RequestModel):
    inputs: dict[str, Any] | None = None
