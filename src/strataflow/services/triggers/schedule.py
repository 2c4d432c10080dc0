"""When a trigger fires: an interval in seconds, a cron expression in a time zone (croniter), or an
event: an `event` trigger has no next time of its own; recording a matching event makes it due
(services/events/outbox.py), at most once per EVENT_MIN_GAP_S (60 s), so a trigger whose action causes
the event it listens to cannot fire in a tight loop."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from strataflow.errors import BadRequestError
from strataflow.services.events.catalog import KNOWN

MIN_INTERVAL_S = 60
TYPES = ("interval", "cron", "event")
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
        event_type = config.get("event_type")
        if not isinstance(event_type, str) or event_type not in KNOWN:
            raise BadRequestError(
                "An event trigger needs event_type: one of the webhook event types, e.g. "
                "'collection.documents.batch_completed'",
                {"event_type": event_type},
            )
        if event_type.startswith("trigger."):
            raise BadRequestError("An event trigger cannot listen to trigger events (it would fire itself)")
        resource_id = config.get("resource_id")
        if resource_id is not None and not isinstance(resource_id, str):
            raise BadRequestError("resource_id must be a string", {"resource_id": resource_id})
        return {"event_type": event_type, "resource_id": resource_id}
    raise BadRequestError(
        f"Trigger type '{trigger_type}' is not available on this server; use interval, cron or event",
        {"trigger_type": trigger_type, "available": list(TYPES)},
    )


def next_fire(trigger_type: str, config: dict[str, Any], after: datetime) -> datetime | None:
    """The first firing time strictly after `after` (an aware UTC datetime); None for an event
    trigger (an event, not the clock, makes it due)."""
    if trigger_type == "event":
        return None
    if trigger_type == "interval":
        return after + timedelta(seconds=int(config["interval_seconds"]))
    local = after.astimezone(ZoneInfo(config.get("timezone", "UTC")))
    moment: datetime = croniter(config["cron_expression"], local).get_next(datetime)
    return moment.astimezone(after.tzinfo)
