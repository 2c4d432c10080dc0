"""When a trigger fires: an interval in seconds, or a cron expression in a time zone (croniter)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from strataflow.errors import BadRequestError

MIN_INTERVAL_S = 60
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
    raise BadRequestError(
        f"Trigger type '{trigger_type}' is not available on this server; use interval or cron",
        {"trigger_type": trigger_type, "available": ["interval", "cron"]},
    )


def next_fire(trigger_type: str, config: dict[str, Any], after: datetime) -> datetime:
    """The first firing time strictly after `after` (an aware UTC datetime)."""
    if trigger_type == "interval":
        return after + timedelta(seconds=int(config["interval_seconds"]))
    local = after.astimezone(ZoneInfo(config.get("timezone", "UTC")))
    moment: datetime = croniter(config["cron_expression"], local).get_next(datetime)
    return moment.astimezone(after.tzinfo)
