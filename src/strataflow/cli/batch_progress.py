"""Follow a submitted batch tier by tier with rich progress bars, until it ends."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from strataflow.cli.client import TERMINAL, ApiError, Client

STATUS_STYLE = {
    "COMPLETED": "green",
    "COMPLETED_WITH_ERRORS": "yellow",
    "FAILED": "red",
    "CANCELED": "red",
    "PROCESSING": "cyan",
    "IN_PROGRESS": "cyan",
    "PENDING": "dim",
    "QUEUED": "dim",
}


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def find_batch_bucket(client: Client, batch_id: str) -> str:
    """A batch lives under its bucket; without --bucket, look in every bucket of the namespace."""
    buckets = client.get("/v1/buckets", params={"limit": 100})["results"]
    for bucket in buckets:
        try:
            client.get(f"/v1/buckets/{bucket['bucket_id']}/batches/{batch_id}")
            return str(bucket["bucket_id"])
        except ApiError as error:
            if error.status != 404:
                raise
    raise ApiError(f"batch {batch_id} was not found in any bucket of this namespace (try --namespace or --bucket)", 404)


def collection_names(client: Client) -> dict[str, str]:
    answer = client.post("/v1/collections/list", json={}, params={"limit": 100})
    return {c["collection_id"]: c["collection_name"] for c in answer["results"]}


def tier_label(tier: dict[str, Any], names: dict[str, str]) -> str:
    collections = ", ".join(names.get(c, c) for c in tier.get("collection_ids") or [])
    return f"tier {tier['tier_num']}  {collections}"


def follow_batch(client: Client, bucket: str, batch_id: str, console: Console, poll_s: float = 0.3) -> dict[str, Any]:
    """Draw one bar per tier (rows processed, documents written) and return the final batch."""
    names = collection_names(client)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[docs]} documents  {task.fields[status]}"),
        TimeElapsedColumn(),
    )
    bars: dict[int, TaskID] = {}
    with Progress(*columns, console=console, transient=False) as progress:
        while True:
            batch: dict[str, Any] = client.get(f"/v1/buckets/{bucket}/batches/{batch_id}")
            for tier in batch.get("tier_tasks") or []:
                performance = tier.get("performance") or {}
                total = performance.get("rows_total")
                done = performance.get("rows_done") or 0
                docs, status = tier.get("documents_written") or 0, styled(str(tier.get("status")))
                if tier["tier_num"] not in bars:
                    bars[tier["tier_num"]] = progress.add_task(
                        tier_label(tier, names), total=total, docs=docs, status=status
                    )
                progress.update(bars[tier["tier_num"]], completed=done, total=total, docs=docs, status=status)
            if batch["status"] in TERMINAL:
                return batch
            time.sleep(poll_s)


def documents_per_collection(batch: dict[str, Any], names: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tier in batch.get("tier_tasks") or []:
        for job in tier.get("extractor_jobs") or []:
            for collection_id in job.get("collection_ids") or []:
                name = names.get(collection_id, collection_id)
                counts[name] = counts.get(name, 0) + int(job.get("documents_written") or 0)
    return counts
