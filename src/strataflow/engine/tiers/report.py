"""What a tier reports: per-collection tallies summed over its chunks, turned into its TierResult."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from strataflow.engine.runners import RunNotes
from strataflow.engine.tiers.job import TierResult
from strataflow.extractors.base import ErrorCategory

_MAX_WORKER_LOG_LINES = 400  # runner log lines kept in a tier's logs
_AFFECTED_IDS = 100  # failed row ids kept per category (the counts are exact)
_SAVED = (
    "rows",
    "filtered_out",
    "failed",
    "missing_inputs",
    "documents_written",
    "prepare_ms",
    "extract_ms",
    "write_ms",
    "errors",
    "error_counts",
    "messages",
)


@dataclass
class Tally:
    """Per-collection results of a tier, summed over its chunks."""

    collection_id: str
    extractor: str
    rows: int = 0
    filtered_out: int = 0
    failed: int = 0
    missing_inputs: int = 0
    documents_written: int = 0
    prepare_ms: float = 0.0
    extract_ms: float = 0.0
    write_ms: float = 0.0
    started: float = field(default_factory=time.monotonic)
    errors: dict[str, list[str]] = field(default_factory=dict)  # category -> affected row ids (the first 100)
    error_counts: dict[str, int] = field(default_factory=dict)  # category -> failed rows
    messages: dict[str, str] = field(default_factory=dict)  # category -> first message
    notes: RunNotes = field(default_factory=RunNotes)  # where the runner ran it: Ray ids, worker log lines

    def add_failure(self, category: str, row_id: str, message: str) -> None:
        ids = self.errors.setdefault(category, [])
        if len(ids) < _AFFECTED_IDS:
            ids.append(row_id)
        self.error_counts[category] = self.error_counts.get(category, 0) + 1
        self.messages.setdefault(category, message)

    def snapshot(self) -> dict[str, Any]:
        """What a take-over needs to carry the sums on (JSON, stored in the tier's checkpoint)."""
        return {name: getattr(self, name) for name in _SAVED} | {"elapsed_s": time.monotonic() - self.started}

    def restore(self, saved: dict[str, Any]) -> None:
        """Carry on from a snapshot an earlier owner of the tier committed."""
        for name in _SAVED:
            if name in saved:
                setattr(self, name, saved[name])
        self.started = time.monotonic() - float(saved.get("elapsed_s") or 0.0)


def tier_result(tier_num: int, tallies: list[Tally], total_rows: int, stopped: bool) -> TierResult:
    """The tier's outcome from its collections' tallies: counters, extractor jobs, errors, logs."""
    errors: list[dict[str, Any]] = []
    summary: dict[str, int] = {}
    jobs = []
    for tally in tallies:
        for category, ids in tally.errors.items():
            count = tally.error_counts.get(category, len(ids))
            summary[category] = summary.get(category, 0) + count
            errors.append(
                {
                    "error_type": category,
                    "message": tally.messages[category],
                    "component": tally.extractor,
                    "stage": "extraction",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "affected_document_ids": ids[:_AFFECTED_IDS],
                    "affected_count": count,
                    "recovery_suggestion": "retry the batch"
                    if ErrorCategory(category).transient
                    else "fix the source data, then retry with retry_mode='all'",
                    "metadata": {"collection_id": tally.collection_id},
                }
            )
        duration = round((time.monotonic() - tally.started) * 1000, 1)
        jobs.append(
            {
                "extractor_type": tally.extractor,
                "collection_ids": [tally.collection_id],
                "status": "FAILED"
                if tally.rows and tally.failed >= tally.rows
                else ("COMPLETED_WITH_ERRORS" if tally.failed else "COMPLETED"),
                "duration_ms": duration,
                "documents_written": tally.documents_written,
                "errors": [e for e in errors if e["metadata"]["collection_id"] == tally.collection_id],
                "error": next(iter(tally.messages.values()), None),
                "ray_job_id": tally.notes.job_id,
                "ray_actor_ids": tally.notes.actor_ids,
                "ray_task_ids": tally.notes.task_ids,
                "timing_ms": {
                    "inputs": round(tally.prepare_ms),
                    "extraction": round(tally.extract_ms),
                    "writes": round(tally.write_ms),
                },
                "celery_task_id": None,
            }
        )
    rows = sum(t.rows for t in tallies)
    written = sum(t.documents_written for t in tallies)
    elapsed = max(max((time.monotonic() - t.started for t in tallies), default=0.0), 1e-6)
    after_filter = total_rows - max((t.filtered_out for t in tallies), default=0)
    counters: dict[str, Any] = {
        "source_documents_fetched": total_rows,
        "documents_after_source_filter": after_filter,
        "documents_missing_input_fields": sum(t.missing_inputs for t in tallies),
        "documents_submitted_to_engine": rows - sum(t.missing_inputs for t in tallies),
        "documents_written": written,
        "documents_per_second": round(written / elapsed, 1),
    }
    job_ids = sorted({t.notes.job_id for t in tallies if t.notes.job_id})
    if job_ids:  # the Ray job (driver) that ran the tier's extraction
        counters["ray_job_id"] = ",".join(job_ids)
    logs = [
        f"tier {tier_num} collection {t.collection_id}: {t.rows} rows, {t.failed} failed, "
        f"{t.documents_written} documents written; inputs {t.prepare_ms / 1000:.2f}s, "
        f"extraction {t.extract_ms / 1000:.2f}s, writes {t.write_ms / 1000:.2f}s"
        for t in tallies
    ]
    worker_lines = [line for t in tallies for line in t.notes.logs]
    if len(worker_lines) > _MAX_WORKER_LOG_LINES:  # the tier row is no log store: keep both ends
        half = _MAX_WORKER_LOG_LINES // 2
        skipped = len(worker_lines) - 2 * half
        worker_lines = [*worker_lines[:half], f"... {skipped} lines left out ...", *worker_lines[-half:]]
    logs += worker_lines
    return TierResult(
        rows_total=rows,
        rows_failed=sum(t.failed for t in tallies),
        counters=counters,
        extractor_jobs=jobs,
        errors=errors,
        error_summary=summary,
        logs=logs,
        stopped=stopped,
    )
