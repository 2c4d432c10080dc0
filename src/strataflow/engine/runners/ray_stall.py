"""Why a Ray tier makes no progress: Ray's own account of what waits for which resources.

A tier whose lease is alive can still wait forever on Ray: a stage actor
restarted where no CPU is free (its node was lost), a stage asking for a
resource no node has, reads queued behind other pipelines' actors. Ray knows
and says so in its autoscaler status (the pending resource demands), and Ray
Data logs "Cluster resources are not enough to run any task from ...". This
module gathers those into one line for the tier's report. It reads the GCS,
so it works without the Ray dashboard; anything it cannot read it leaves out.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import ray

log = logging.getLogger("strataflow.runner.ray_stall")

_RAY_DATA_HINTS = ("resources are not enough", "may hang", "insufficient resources", "cannot be scheduled")


class RayDataWarnings(logging.Handler):
    """The last few warnings Ray Data's executor logged in this process (e.g. 'the job may hang forever')."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=5)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(hint in message.lower() for hint in _RAY_DATA_HINTS):
            self.lines.append(" ".join(message.split())[:400])


def _resources(values: dict[str, float]) -> str:
    shown = {
        k: v for k, v in values.items() if k in ("CPU", "GPU") or not k.startswith(("node:", "memory", "object_store"))
    }
    return ", ".join(f"{k} {v:g}" for k, v in sorted(shown.items())) or "nothing"


def pending_demand() -> str | None:
    """Ray's pending task/actor demands that no node has room for, e.g. "{'CPU': 1.0} x1"; None when none."""
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address)
        bundles = [
            f"{dict(request.bundle)} x{request.count}"
            for demand in status.resource_demands.ray_task_actor_demand
            for request in demand.bundles_by_count
        ]
    except Exception:  # a report, never a reason to fail: leave it out
        log.debug("ray cluster status unavailable", exc_info=True)
        return None
    return "; ".join(bundles) or None


def actor_states(actor_ids: list[str]) -> dict[str, str]:
    """The GCS's state of each actor (ALIVE, PENDING_CREATION, RESTARTING, DEAD), where it can be read."""
    states: dict[str, str] = {}
    for actor_id in actor_ids:
        try:
            info: Any = ray._private.state.actors(actor_id)  # the GCS actor table; the state API needs a dashboard
            states[actor_id] = str(info.get("State", "UNKNOWN"))
        except Exception:  # noqa: BLE001, S112  not known (yet): leave it out
            continue
    return states


def stall_reason(limit_s: float, actor_ids: list[str], ray_data_lines: list[str]) -> str:
    """One line for the tier: the stall limit it reached, where the actors are, and what Ray says it waits for.

    The limit (`tier_stall_s`), not the measured wait, is named: both runners then say the same, and the
    wait is only ever the limit plus how late the check came round.
    """
    parts = [f"no extraction result for {limit_s:g}s"]
    states = actor_states(actor_ids)
    not_alive = {a[:12]: s for a, s in states.items() if s != "ALIVE"}
    if not_alive:
        parts.append(f"stage actors not running: {not_alive}")
    demand = pending_demand()
    if demand:
        try:
            total, free = _resources(ray.cluster_resources()), _resources(ray.available_resources())
        except Exception:  # noqa: BLE001  only a report
            total = free = "unknown"
        parts.append(f"Ray: resources not enough for pending demand {demand} (cluster: {total}; free: {free})")
    parts += [f"Ray Data: {line}" for line in ray_data_lines]
    if not demand and not not_alive and not ray_data_lines:
        parts.append(
            "Ray reports no pending demand: the stage itself is slow or stuck "
            "(raise STRATAFLOW_TIER_STALL_S if one batch legitimately takes longer)"
        )
    return "; ".join(parts)
