"""Webhooks through the official SDK against a real `strataflow serve` and a real receiver:
CRUD and refusals, a signed delivery, the change feed, and a server SIGKILLed while a delivery
is in flight still delivers after its restart (at least once: the receiver sees the event again)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import mixpeek
import pytest
from mixpeek import BucketObjectsApi, BucketsApi, EventsApi, NamespacesApi, WebhooksApi
from mixpeek.exceptions import ApiException
from mixpeek.models import (
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    Configs,
    CreateBlobRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    ListWebhooksRequest,
    NotificationChannel,
    WebhookChannelInput,
    WebhookConfig,
    WebhookEventType,
    WebhookInput,
)

from tests.events_receiver import Receiver, verify
from tests.live import API_KEY, LiveServer, start_server

SECRET = "whsec_live_secret"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _env(receiver: Receiver) -> dict[str, str]:
    return {
        "STRATAFLOW_OUTBOUND_ALLOW": receiver.url.split("/")[2],
        "STRATAFLOW_EVENTS_POLL_INTERVAL_S": "0.1",
        "STRATAFLOW_EVENTS_RETRY_BASE_S": "0.1",
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhooks") / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path, receiver: Receiver) -> Iterator[LiveServer]:
    live = start_server(data_dir, extra_env=_env(receiver))
    yield live
    live.stop()


def _client(url: str) -> mixpeek.ApiClient:
    return mixpeek.ApiClient(mixpeek.Configuration(host=url, access_token=API_KEY))


def _webhook(url: str, secret: str | None = SECRET, **extra: object) -> WebhookInput:
    config = WebhookConfig(url=url, signing_secret=secret, headers={"X-Source": "strataflow"}, timeout=5, **extra)
    return WebhookInput(
        webhook_name="objects",
        event_types=[WebhookEventType.OBJECT_DOT_CREATED],
        channels=[WebhookChannelInput(channel=NotificationChannel.WEBHOOK, configs=Configs(config))],
    )


def _object(sdk: mixpeek.ApiClient, title: str) -> str:
    created = BucketObjectsApi(sdk).create_object_buckets(
        "docs",
        CreateObjectRequest(
            blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data("hi"))],
            additional_properties={"metadata": {"title": title}},
        ),
    )
    return str(created.object_id)


def _setup_namespace(sdk: mixpeek.ApiClient) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="events", feature_extractors=[]))
    sdk.configuration.api_key["NamespaceHeader"] = ns.namespace_id
    BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="docs",
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )


def test_webhooks_through_the_sdk(server: LiveServer, receiver: Receiver) -> None:
    with _client(server.url) as sdk:
        _setup_namespace(sdk)
        hooks = WebhooksApi(sdk)
        with pytest.raises(ApiException) as refused:
            hooks.create_webhook_organizations(_webhook("http://169.254.169.254/latest/meta-data"))
        assert refused.value.status == 400
        email = WebhookChannelInput.from_dict({"channel": "email", "configs": {"to_addresses": ["ops@example.com"]}})
        with pytest.raises(ApiException) as no_email:
            hooks.create_webhook_organizations(
                WebhookInput(webhook_name="mail", event_types=[WebhookEventType.ALERT_DOT_TRIGGERED], channels=[email])
            )
        assert no_email.value.status == 400 and "email" in str(no_email.value.body)

        hook = hooks.create_webhook_organizations(_webhook(receiver.url))
        assert hook.webhook_id and hook.is_active is True
        assert hook.channels[0].configs.actual_instance.signing_secret == "redacted"
        listed = hooks.list_webhooks_organizations(list_webhooks_request=ListWebhooksRequest(is_active=True))
        assert listed.total == 1 and listed.results[0].webhook_id == hook.webhook_id
        assert hooks.get_webhook_organizations(hook.webhook_id).webhook_name == "objects"

        object_id = _object(sdk, "signed")
        got = receiver.wait_for(1)[0]
        assert verify(SECRET, got) and got.headers["x-source"] == "strataflow"
        assert got.json["event_type"] == "object.created" and got.json["resource_id"] == object_id
        assert got.json["payload"]["metadata"] == {"title": "signed"}

        feed = EventsApi(sdk).list_events(event_type=WebhookEventType.OBJECT_DOT_CREATED)
        assert [e.event_type for e in feed.results] == ["object.created"] and feed.has_more is False
        assert feed.results[0].payload["object_id"] == object_id

        renamed = _webhook(receiver.url, secret="redacted")
        renamed.webhook_name = "renamed"
        updated = hooks.update_webhook_organizations(hook.webhook_id, renamed)
        assert updated.webhook_name == "renamed"
        assert updated.channels[0].configs.actual_instance.signing_secret == "redacted"


def test_a_delivery_cut_by_sigkill_is_made_after_restart(
    server: LiveServer, data_dir: Path, receiver: Receiver
) -> None:
    """The receiver holds the request open; the server dies mid-delivery; the restarted one delivers again."""
    before = len(receiver.received)
    receiver.behaviour.gate = threading.Event()
    with _client(server.url) as sdk:
        sdk.configuration.api_key["NamespaceHeader"] = "events"
        object_id = _object(sdk, "crash")
    held = receiver.wait_for(before + 1)[-1]
    assert held.json["resource_id"] == object_id
    server.stop(signal.SIGKILL)
    receiver.behaviour.gate.set()
    receiver.behaviour.gate = None
    restarted = start_server(data_dir, extra_env=_env(receiver))
    try:
        # At once when this host sees the killed PID gone; at worst when its lease (timeout + 30 s) ends.
        again = receiver.wait_for(before + 2, timeout=120)[-1]
        assert again.headers["x-mixpeek-event-id"] == held.headers["x-mixpeek-event-id"]
        assert again.headers["x-mixpeek-delivery-attempt"] == "2" and verify(SECRET, again)
    finally:
        restarted.stop()
