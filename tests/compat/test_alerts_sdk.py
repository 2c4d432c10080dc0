"""Organisation alerts through the official SDK (AlertsApi.*_org_alert_organizations) against a
real `strataflow serve` and a real webhook receiver: a retriever alert and a system alert,
listed, searched, read by name, patched, evaluated (the receiver gets the signed
`alert.triggered`), refused where this server cannot serve the condition, and deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek import AlertsApi, NamespacesApi, WebhooksApi
from mixpeek.exceptions import BadRequestException, NotFoundException
from mixpeek.models import (
    AlertNotificationConfig,
    AlertSource,
    Configs,
    CreateAlertRequest,
    CreateNamespaceRequest,
    ListAlertsRequest,
    NamespaceSelector,
    NamespaceSelectorMode,
    NotificationChannel,
    NotificationChannelConfig,
    PatchAlertRequest,
    SortDirection,
    SortOption,
    SystemCondition,
    SystemConditionType,
    TriggerOn,
    WebhookChannelInput,
    WebhookConfig,
    WebhookEventType,
    WebhookInput,
)

from tests.events_receiver import Receiver, verify
from tests.live import API_KEY, LiveServer, start_server

pytestmark = pytest.mark.compat
SECRET = "whsec_alerts_sdk"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[LiveServer]:
    env = {"STRATAFLOW_OUTBOUND_ALLOW": receiver.url.split("/")[2], "STRATAFLOW_EVENTS_POLL_INTERVAL_S": "0.1"}
    live = start_server(Path(tmp_path_factory.mktemp("alerts")) / "data", extra_env=env)
    yield live
    live.stop()


@pytest.fixture
def sdk(server: LiveServer) -> Iterator[mixpeek.ApiClient]:
    with mixpeek.ApiClient(mixpeek.Configuration(host=server.url, access_token=API_KEY)) as client:
        yield client


def _http(server: LiveServer, namespace: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {API_KEY}", **({"X-Namespace": namespace} if namespace else {})}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def _quiet_retriever(server: LiveServer, namespace: str) -> str:
    """A retriever over a collection with no documents: it returns nothing (setup over plain HTTP)."""
    with _http(server, namespace) as http:
        schema = {"properties": {"content": {"type": "text"}, "title": {"type": "string"}}}
        assert http.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).status_code == 200
        collection = http.post(
            "/v1/collections",
            json={
                "collection_name": "notes",
                "source": {"type": "bucket", "bucket_ids": ["docs"]},
                "feature_extractor": {
                    "feature_extractor_name": "passthrough_extractor",
                    "version": "v1",
                    "field_passthrough": [{"source_path": "title"}],
                    "parameters": {"extractor_type": "passthrough_extractor"},
                },
            },
        )
        assert collection.status_code == 200, collection.text
        stage = {
            "stage_name": "pick",
            "config": {
                "stage_id": "attribute_filter",
                "parameters": {"filters": {"field": "title", "operator": "eq", "value": "x"}},
            },
        }
        retriever = http.post(
            "/v1/retrievers",
            json={
                "retriever_name": "quiet",
                "collection_identifiers": ["notes"],
                "stages": [stage],
                "input_schema": {},
            },
        )
        assert retriever.status_code == 200, retriever.text
        return str(retriever.json()["retriever_id"])


def _channels(webhook_id: str) -> AlertNotificationConfig:
    return AlertNotificationConfig(channels=[NotificationChannelConfig(channel_type="webhook", channel_id=webhook_id)])


def test_organisation_alerts_through_the_sdk(sdk: mixpeek.ApiClient, server: LiveServer, receiver: Receiver) -> None:
    namespace = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="alerts-sdk"))
    retriever_id = _quiet_retriever(server, namespace.namespace_id)
    hook = WebhooksApi(sdk).create_webhook_organizations(
        WebhookInput(
            webhook_name="alerts",
            event_types=[WebhookEventType.OBJECT_DOT_DELETED],  # the alerts name it: it gets their firings
            channels=[
                WebhookChannelInput(
                    channel=NotificationChannel.WEBHOOK,
                    configs=Configs(WebhookConfig(url=receiver.url, signing_secret=SECRET)),
                )
            ],
        )
    )
    alerts = AlertsApi(sdk)
    gone_dark = alerts.create_org_alert_organizations(
        CreateAlertRequest(
            name="gone-dark",
            source=AlertSource.RETRIEVER,
            retriever_id=retriever_id,
            trigger_on=TriggerOn.NO_RESULTS,
            notification_config=_channels(hook.webhook_id),
        )
    )
    assert gone_dark.alert_id and gone_dark.namespace_id is None and gone_dark.trigger_on == TriggerOn.NO_RESULTS
    empty = alerts.create_org_alert_organizations(
        CreateAlertRequest(
            name="empty-collections",
            source=AlertSource.SYSTEM,
            system_condition=SystemCondition(type=SystemConditionType.COLLECTION_EMPTY),
            namespace_selector=NamespaceSelector(
                mode=NamespaceSelectorMode.SELECTED, namespace_ids=[namespace.namespace_id]
            ),
            renotify_interval_seconds=3600,
            notification_config=_channels(hook.webhook_id),
        )
    )
    assert empty.source == AlertSource.SYSTEM and empty.renotify_interval_seconds == 3600
    assert empty.system_condition is not None and empty.system_condition.type == SystemConditionType.COLLECTION_EMPTY
    assert empty.namespace_selector is not None and empty.namespace_selector.namespace_ids == [namespace.namespace_id]

    listed = alerts.list_org_alerts_organizations()
    assert listed.total_count == 2 and {a.name for a in listed.results} == {"gone-dark", "empty-collections"}
    assert listed.stats is not None and listed.stats.enabled_alerts == 2
    searched = alerts.list_org_alerts_organizations_0(list_alerts_request=ListAlertsRequest(search="EMPTY"))
    assert [a.alert_id for a in searched.results] == [empty.alert_id]
    by_name = ListAlertsRequest(sort=SortOption(field="name", direction=SortDirection.DESC))  # newest first without
    assert [a.name for a in alerts.list_org_alerts_organizations_0(list_alerts_request=by_name).results] == [
        "gone-dark",
        "empty-collections",
    ]
    only_empty = ListAlertsRequest.from_dict(
        {"filters": {"AND": [{"field": "name", "operator": "eq", "value": "empty-collections"}]}}
    )
    assert only_empty is not None and only_empty.filters is not None
    filtered = alerts.list_org_alerts_organizations_0(list_alerts_request=only_empty)
    assert [a.alert_id for a in filtered.results] == [empty.alert_id]
    assert alerts.get_org_alert_organizations("gone-dark").alert_id == gone_dark.alert_id
    patched = alerts.patch_org_alert_organizations(
        empty.alert_id, PatchAlertRequest(description="collections with nothing in them", cooldown_seconds=60)
    )
    assert patched.description == "collections with nothing in them" and patched.cooldown_seconds == 60

    with _http(server) as http:  # evaluate now (an extension): both conditions hold
        for alert in (gone_dark, empty):
            answer = http.post(f"/v1/organizations/alerts/{alert.alert_id}/execute")
            assert answer.status_code == 200 and answer.json()["triggered"] is True, answer.text
    fired = [r for r in receiver.wait_for(2, timeout=60) if r.json["event_type"] == "alert.triggered"]
    assert {r.json["resource_id"] for r in fired} == {gone_dark.alert_id, empty.alert_id}
    assert all(verify(SECRET, r) for r in fired)

    for refused in (
        {"system_condition": SystemCondition(type=SystemConditionType.DLQ_GROWTH)},
        {"system_condition": SystemCondition(type=SystemConditionType.BATCH_FAILED, params={"unknown": 1})},
    ):
        body: dict[str, Any] = {"name": "refused", "source": AlertSource.SYSTEM, **refused}
        with pytest.raises(BadRequestException):
            alerts.create_org_alert_organizations(
                CreateAlertRequest(**body, notification_config=_channels(hook.webhook_id))
            )
    sdk.configuration.api_key["NamespaceHeader"] = namespace.namespace_id
    assert alerts.list_alerts().total_count == 0  # the namespace has none of its own
    alerts.delete_org_alert_organizations(gone_dark.alert_id)
    with pytest.raises(NotFoundException):
        alerts.get_org_alert_organizations(gone_dark.alert_id)
    assert alerts.list_org_alerts_organizations().total_count == 1
