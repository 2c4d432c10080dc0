"""Triggers: schedules (interval, cron) that fire an action on a target (a cluster today)."""
