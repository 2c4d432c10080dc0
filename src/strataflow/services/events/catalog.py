"""The contract's webhook event types (`WebhookEventType`) and what each says about its resource."""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = (
    "object.created",
    "objects.created.batch",
    "object.updated",
    "object.deleted",
    "document.created",
    "document.updated",
    "document.deleted",
    "documents.updated.batch",
    "documents.deleted.batch",
    "collection.created",
    "collection.updated",
    "collection.deleted",
    "collection.documents.written",
    "collection.documents.batch_completed",
    "cluster.created",
    "cluster.updated",
    "cluster.deleted",
    "cluster.execution.started",
    "cluster.execution.completed",
    "cluster.execution.failed",
    "trigger.created",
    "trigger.updated",
    "trigger.deleted",
    "trigger.paused",
    "trigger.resumed",
    "trigger.fired",
    "trigger.execution.completed",
    "trigger.execution.failed",
    "taxonomy.created",
    "taxonomy.updated",
    "taxonomy.deleted",
    "alert.created",
    "alert.updated",
    "alert.deleted",
    "alert.triggered",
    "alert.execution.completed",
    "alert.execution.failed",
    "annotation.created",
    "annotation.updated",
    "annotation.deleted",
    "resource.executed",
    "resource.execution_failed",
    "manifest.apply.resource_state",
)
KNOWN = frozenset(EVENT_TYPES)
# Contract types naming something this server does not have: a subscription to them is refused at
# creation (with this reason) rather than accepted and never delivered.
NEVER_EMITTED: dict[str, str] = {
    "annotation.created": "this server has no annotations",
    "annotation.updated": "this server has no annotations",
    "annotation.deleted": "this server has no annotations",
    "manifest.apply.resource_state": "this server has no manifest apply",
}
WILDCARD = "*"  # a subscription to every event type
# An event trigger fires at most once per this many seconds (services/triggers/schedule.py says why).
EVENT_MIN_GAP_S = 60


def resource_type_of(event_type: str) -> str:
    """The first segment, singular: `objects.created.batch` is about objects."""
    head = event_type.split(".", 1)[0]
    return "object" if head == "objects" else "document" if head == "documents" else head


def operation_of(event_type: str) -> str:
    """insert | update | delete | other, as the change feed reports it."""
    parts = event_type.split(".")
    if "created" in parts:
        return "insert"
    if "updated" in parts:
        return "update"
    if "deleted" in parts:
        return "delete"
    return "other"
