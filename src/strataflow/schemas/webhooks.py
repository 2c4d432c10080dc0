"""Wire shapes of webhooks (the contract's WebhookInput / WebhookOutput and the list request)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.schemas.common import RequestModel


class WebhookChannelRequest(RequestModel):
    channel: str = Field(min_length=1)
    configs: dict[str, Any]


class WebhookRequest(RequestModel):
    webhook_name: str = Field(min_length=1, max_length=200)
    event_types: list[str] = Field(min_length=1, max_length=100)
    resource_types: list[str] | None = Field(default=None, max_length=100)
    channels: list[WebhookChannelRequest] = Field(min_length=1, max_length=10)
    is_active: bool = True


class WebhookConfigRequest(RequestModel):
    """A `webhook` channel's configs: where to POST, with what, for how long."""

    url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] | None = None
    payload_template: dict[str, Any] | None = None
    timeout: float = 10.0
    signing_secret: str | None = Field(default=None, max_length=512)


class ListWebhooksRequest(RequestModel):
    event_type: str | None = None
    is_active: bool | None = None
