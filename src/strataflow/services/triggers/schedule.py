"""When a trigger fires: an interval in seconds, a cron expression in a time zone (croniter), an
event, or a condition.

- An `event` trigger has no next time of its own; recording a matching event makes it due
  (services/events/outbox.py), at most once per `cooldown_seconds` (at least EVENT_MIN_GAP_S, 60 s),
  so a trigger whose action causes the event it listens to cannot fire in a tight loop. With
  `event_threshold` it becomes due once that many matching events (for `documents_added`: that
  many documents written to the collection) have been counted since it last fired.
- A `conditional` trigger is checked every `check_interval_seconds` (a slot claimed like an
  interval's) and fires when its condition holds (services/triggers/conditions.py): documents
  added to a collection since the last firing reaching `threshold`, or a system condition (the
  system alerts' measures) rising.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from strataflow.errors import BadRequestError
from strataflow.services.alerts import system
from strataflow.services.events.catalog import EVENT_MIN_GAP_S, KNOWN, NEVER_EMITTED

MIN_INTERVAL_S = 60
TYPES = ("interval", "cron", "event", "conditional")
DOCUMENTS_ADDED = "documents_added"  # documents written to a collection (rows of its finished tiers)
WRITTEN = "collection.documents.written"
DEFAULT_CHECK_S = 300
NOT_MEASURED = {"drift": "this server keeps no embedding-drift baseline; use documents_added"}
_UNITS = {"interval_seconds": 1, "interval_minutes": 60, "interval_hours": 3600}


def normalise(trigger_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """The stored schedule; anything that could never fire is a 400 now."""
    if trigger_type == "interval":
        given = [(k, v) for k, v in config.items() if k in _UNITS]
        if len(given) != 1:
            raise BadRequestError(
                "An interval trigger needs exactly one of interval_seconds, interval_minutes, interval_hours",
                {"schedule_config": config},
            )
        name, value = given[0]
        if not isinstance(value, int) or isinstance(value, bool) or value * _UNITS[name] < MIN_INTERVAL_S:
            raise BadRequestError(
                f"The interval must be a whole number of at least {MIN_INTERVAL_S} seconds", {name: value}
            )
        return {"interval_seconds": value * _UNITS[name]}
    if trigger_type == "cron":
        expression = config.get("cron_expression") or config.get("cron")
        if not isinstance(expression, str) or not croniter.is_valid(expression):
            raise BadRequestError(
                "A cron trigger needs a valid 5-field cron_expression, e.g. '0 3 * * *'",
                {"cron_expression": expression},
            )
        zone = str(config.get("timezone") or "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequestError(f"Unknown time zone '{zone}'", {"timezone": zone}) from None
        return {"cron_expression": expression, "timezone": zone}
    if trigger_type == "event":
        return _event(config)
    if trigger_type == "conditional":
        return _conditional(config)
    raise BadRequestError(
        f"Unknown trigger type '{trigger_type}'; use interval, cron, event or conditional",
        {"trigger_type": trigger_type, "available": list(TYPES)},
    )


def _whole(config: dict[str, Any], key: str, default: int, least: int) -> int:
    value = config.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise BadRequestError(f"{key} must be a whole number of at least {least}", {key: value})
    return value


def _event(config: dict[str, Any]) -> dict[str, Any]:
    event_type = config.get("event_type")
    resource_id = config.get("resource_id", config.get("collection_id"))
    counts = "events"
    if event_type == DOCUMENTS_ADDED:  # the cluster triggers' event: documents written to a collection
        if not isinstance(resource_id, str) or not resource_id:
            raise BadRequestError("A documents_added event trigger needs collection_id")
        event_type, counts = WRITTEN, "documents"
    if not isinstance(event_type, str) or event_type not in KNOWN:
        raise BadRequestError(
            "An event trigger needs event_type: one of the webhook event types, e.g. "
            "'collection.documents.batch_completed', or 'documents_added' with a collection_id",
            {"event_type": event_type},
        )
    if event_type in NEVER_EMITTED:  # it would wait forever: refused as a webhook subscription is
        raise BadRequestError(
            f"Event type '{event_type}' is never emitted: {NEVER_EMITTED[event_type]}", {"event_type": event_type}
        )
    if event_type.startswith("trigger."):
        raise BadRequestError("An event trigger cannot listen to trigger events (it would fire itself)")
    if resource_id is not None and not isinstance(resource_id, str):
        raise BadRequestError("resource_id must be a string", {"resource_id": resource_id})
    return {
        "event_type": event_type,
        "resource_id": resource_id,
        "counts": counts,
        "event_threshold": _whole(config, "event_threshold", 1, 1),
        "cooldown_seconds": _whole(config, "cooldown_seconds", EVENT_MIN_GAP_S, EVENT_MIN_GAP_S),
    }


def _conditional(config: dict[str, Any]) -> dict[str, Any]:
    kind = config.get("condition_type")
    if not isinstance(kind, str) or not kind:
        raise BadRequestError(
            "A conditional trigger needs condition_type: documents_added, or a system condition "
            f"({', '.join(sorted(system.MEASURES))})",
        )
    if kind in NOT_MEASURED:
        raise BadRequestError(f"Condition '{kind}' is not available on this server: {NOT_MEASURED[kind]}")
    check = _whole(config, "check_interval_seconds", DEFAULT_CHECK_S, MIN_INTERVAL_S)
    stored: dict[str, Any] = {"condition_type": kind, "check_interval_seconds": check, "metric": config.get("metric")}
    if kind == DOCUMENTS_ADDED:
        collection_id = config.get("collection_id")
        if not isinstance(collection_id, str) or not collection_id:
            raise BadRequestError("A documents_added condition needs collection_id")
        threshold = config.get("threshold", 1)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold < 1:
            raise BadRequestError("threshold must be a number of documents, at least 1", {"threshold": threshold})
        return {**stored, "collection_id": collection_id, "threshold": threshold}
    measured = system.normalise(kind, config.get("params"))
    measured["params"].pop(system.CHECK_PARAM, None)
    return {**stored, "params": measured["params"]}


def schedule_collection(trigger_type: str, config: dict[str, Any]) -> str | None:
    """The collection a schedule names (checked to exist when the trigger is saved)."""
    if trigger_type == "conditional":
        return config.get("collection_id") if config.get("condition_type") == DOCUMENTS_ADDED else None
    if trigger_type == "event" and config.get("counts") == "documents":
        return str(config["resource_id"])
    return None


def next_fire(trigger_type: str, config: dict[str, Any], after: datetime) -> datetime | None:
    """The first firing (or check) time strictly after `after` (an aware UTC datetime); None for an
    event trigger (an event, not the clock, makes it due)."""
    if trigger_type == "event":
        return None
    if trigger_type == "conditional":
        return after + timedelta(seconds=int(config["check_interval_seconds"]))
    if trigger_type == "interval":
        return after + timedelta(seconds=int(config["interval_seconds"]))
    local = after.astimezone(ZoneInfo(config.get("timezone", "UTC")))
    moment: datetime = croniter(config["cron_expression"], local).get_next(datetime)
    return moment.astimezone(after.tzinfo)
