"""Webhooks: an organisation's subscriptions. Everything a delivery will need is checked at save
time (event types, channels, URL against the outbound guard, headers, template, timeout): a bad
webhook is a 400 and nothing is written."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.errors import BadRequestError, not_found
from strataflow.outbound import FetchFailed, OutboundClient
from strataflow.schemas.webhooks import WebhookConfigRequest, WebhookRequest
from strataflow.services.events import templates
from strataflow.services.events.catalog import EVENT_TYPES, KNOWN, NEVER_EMITTED, WILDCARD
from strataflow.services.events.secrets import REDACTED, SecretBox
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Webhook

DELIVERED = ("webhook",)
NOT_DELIVERED = {
    "email": "this server has no email provider configured",
    "slack": "this server does not post to Slack; point a webhook channel at a Slack incoming-webhook relay",
    "sms": "this server has no SMS provider configured",
}
# Headers the delivery itself sets: a webhook may not replace them.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "user-agent", "x-mixpeek-signature"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
SEALED = "signing_secret_sealed"


@dataclass(frozen=True)
class WebhookRules:
    """What saving a webhook checks against: the outbound guard, the secret box, the timeout cap."""

    outbound: OutboundClient
    box: SecretBox
    max_timeout_s: float


def _event_types(given: list[str]) -> list[str]:
    unknown = [t for t in given if t not in KNOWN and t != WILDCARD]
    if unknown:
        raise BadRequestError(
            f"Unknown event type(s): {', '.join(unknown)}", {"unknown": unknown, "accepted": list(EVENT_TYPES)}
        )
    never = [t for t in given if t in NEVER_EMITTED]
    if never:
        reasons = "; ".join(f"{t}: {NEVER_EMITTED[t]}" for t in never)
        raise BadRequestError(
            f"Event type(s) this server never emits: {reasons}",
            {"never_emitted": never, "emitted": [t for t in EVENT_TYPES if t not in NEVER_EMITTED]},
        )
    return list(dict.fromkeys(given))


def _headers(given: dict[str, str] | None) -> dict[str, str]:
    headers = dict(given or {})
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise BadRequestError(f"'{name}' is not a valid header name", {"header": name})
        if name.lower() in RESERVED_HEADERS:
            raise BadRequestError(f"Header '{name}' is set by the delivery itself", {"header": name})
        if any(c in value for c in "\r\n\0") or len(value) > 4096:
            raise BadRequestError(f"Header '{name}' has a value that cannot be sent", {"header": name})
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise BadRequestError(f"Header '{name}' must be latin-1 text", {"header": name}) from None
    return headers


def _webhook_channel(
    rules: WebhookRules, configs: dict[str, Any], index: int, previous: dict[str, Any] | None
) -> dict[str, Any]:
    try:
        config = WebhookConfigRequest.model_validate(configs)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadRequestError(f"channels[{index}].configs.{where}: {first.get('msg')}") from None
    try:
        rules.outbound.check(config.url)
    except FetchFailed:
        raise BadRequestError(
            "The webhook URL is refused: it must be http(s) and reach a public address "
            "(internal targets only when STRATAFLOW_OUTBOUND_ALLOW names them)",
            {"channel": index, "url": config.url},
        ) from None
    if not 0 < config.timeout <= rules.max_timeout_s:
        raise BadRequestError(
            f"timeout must be above 0 and at most {rules.max_timeout_s} seconds", {"timeout": config.timeout}
        )
    if config.payload_template is not None:
        templates.validate(config.payload_template)
    stored: dict[str, Any] = {
        "url": config.url,
        "headers": _headers(config.headers),
        "payload_template": config.payload_template,
        "timeout": config.timeout,
    }
    secret = config.signing_secret
    if secret is None or secret == REDACTED:  # keep what this channel had (an update that does not touch it)
        kept = (previous or {}).get(SEALED)
        if kept:
            stored[SEALED] = kept
    elif secret:
        stored[SEALED] = rules.box.seal(secret)
    return stored


def _channels(rules: WebhookRules, request: WebhookRequest, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    channels = []
    for index, channel in enumerate(request.channels):
        kind = channel.channel.lower()
        if kind not in DELIVERED:
            reason = NOT_DELIVERED.get(kind, "it is not a channel this server knows")
            raise BadRequestError(
                f"Channel '{channel.channel}' cannot be delivered: {reason}",
                {"channel": channel.channel, "deliverable": list(DELIVERED)},
            )
        previous = before[index]["configs"] if index < len(before) and before[index].get("channel") == kind else None
        channels.append({"channel": kind, "configs": _webhook_channel(rules, channel.configs, index, previous)})
    return channels


def create_webhook(session: Session, rules: WebhookRules, org_id: str, request: WebhookRequest) -> Webhook:
    now = utcnow()
    row = Webhook(
        webhook_id=f"wh_{secrets.token_hex(8)}",
        org_id=org_id,
        webhook_name=request.webhook_name,
        event_types=_event_types(request.event_types),
        resource_types=request.resource_types or None,
        channels=_channels(rules, request, []),
        is_active=request.is_active,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.commit()
    return row


def get_webhook(session: Session, org_id: str, webhook_id: str) -> Webhook:
    row = session.scalar(select(Webhook).where(Webhook.webhook_id == webhook_id, Webhook.org_id == org_id))
    if row is None:
        raise not_found("Webhook", webhook_id)
    return row


def replace_webhook(session: Session, rules: WebhookRules, row: Webhook, request: WebhookRequest) -> Webhook:
    """PUT: the request replaces the webhook. Secrets sent as 'redacted' (or left out) are kept;
    setting is_active true clears the delivery health (the pause it may have recorded)."""
    channels = _channels(rules, request, list(row.channels))
    row.webhook_name = request.webhook_name
    row.event_types = _event_types(request.event_types)
    row.resource_types = request.resource_types or None
    row.channels = channels
    if request.is_active:
        row.delivery_health = None
    row.is_active = request.is_active
    row.updated_at = utcnow()
    session.commit()
    return row


def delete_webhook(session: Session, row: Webhook) -> None:
    """The webhook, its pending deliveries and its delivery log (cascade)."""
    session.delete(row)
    session.commit()


def list_webhooks(
    session: Session, org_id: str, event_type: str | None, is_active: bool | None, page: PageRequest
) -> tuple[Page, int]:
    query: Select[Any] = select(Webhook).where(Webhook.org_id == org_id)
    if is_active is not None:
        query = query.where(Webhook.is_active.is_(is_active))
    if event_type:
        # Few webhooks per organisation: the subscription filter runs here, portably.
        ids = [
            w.webhook_id
            for w in session.scalars(query)
            if event_type in (w.event_types or []) or WILDCARD in (w.event_types or [])
        ]
        query = select(Webhook).where(Webhook.webhook_id.in_(ids))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    result = paginate(session, query.order_by(Webhook.created_at.desc(), Webhook.webhook_id), page)
    return result, total


def webhook_view(row: Webhook) -> dict[str, Any]:
    channels = []
    for channel in row.channels:
        configs = {k: v for k, v in channel["configs"].items() if k != SEALED}
        configs["signing_secret"] = REDACTED if channel["configs"].get(SEALED) else None
        channels.append({"channel": channel["channel"], "configs": configs})
    return {
        "webhook_id": row.webhook_id,
        "webhook_name": row.webhook_name,
        "event_types": row.event_types,
        "resource_types": row.resource_types,
        "channels": channels,
        "is_active": row.is_active,
        "delivery_health": row.delivery_health,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }
