"""The running system's parts, built once from Settings: database, blobs, index, jobs, scheduler.

The registration tables live here, in plain sight: which background job runs each task type
(`JOB_HANDLERS`), and what else a kill must stop (`KILL_HOOKS`). The extractors are listed in
`extractors/builtin.py` (`BUILTIN_EXTRACTORS`), the table the extractor registry reads; it stays
there because worker processes load extractors without a runtime.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from strataflow.blobs import BlobStore
from strataflow.blobs.stores import open_blob_store
from strataflow.config import Settings
from strataflow.engine.clusters.auto import AutoExecutions
from strataflow.engine.clusters.job import cluster_build_job
from strataflow.engine.dispatcher import EventDispatcher
from strataflow.engine.jobs import Handler, JobContext, JobRunner
from strataflow.engine.lifecycle.cancel import cancel_from_task
from strataflow.engine.lifecycle.purge import remove_batch_documents_job
from strataflow.engine.runners import ExtractionCall, Runner, RunNotes
from strataflow.engine.runners.base import Pipelines
from strataflow.engine.scheduler import Scheduler
from strataflow.engine.tiers.executor import BatchTierExecutor
from strataflow.engine.triggers import TriggerAction, TriggerLoop, WatcherFactory
from strataflow.extractors.base import RowResult
from strataflow.extractors.vision import catalog as vision_catalog
from strataflow.index.storage import index_storage_options, index_write_locks
from strataflow.index.store import DocumentIndex
from strataflow.outbound import OutboundClient, OutboundPolicy
from strataflow.services.alerts.ingest import evaluate_pending
from strataflow.services.alerts.sweep import check_system_alerts
from strataflow.services.buckets.crud import delete_bucket_job
from strataflow.services.clusters.runs import cancel_from_task as cancel_cluster_run
from strataflow.services.clusters.triggers import fire_cluster
from strataflow.services.events.retention import sweep_old_events
from strataflow.services.events.secrets import SecretBox
from strataflow.services.events.webhooks import WebhookRules
from strataflow.services.objects.crud import ObjectWriter
from strataflow.services.objects.sources import BlobSources
from strataflow.services.retrievers.evaluations import evaluation_job
from strataflow.services.taxonomies.apply import apply_job
from strataflow.services.tenancy.auth import IssuedKey, bootstrap
from strataflow.services.tenancy.namespaces import delete_namespace_job
from strataflow.services.tenancy.tasks import KillHook
from strataflow.services.triggers.actions import (
    fire_alert,
    fire_batch_rerun,
    fire_collection,
    fire_retriever,
    fire_taxonomy,
)
from strataflow.services.triggers.settle import settle_firings
from strataflow.services.uploads.jobs import batch_confirm_job, confirm_job, fail_killed_confirm
from strataflow.statuses import TaskType
from strataflow.store.db import Database
from strataflow.store.migrate import upgrade_to_head

log = logging.getLogger("strataflow")

# Which handler runs each background task type (engine/jobs.py claims only these types).
JOB_HANDLERS: dict[str, Handler] = {
    TaskType.BUCKETS_DELETE: delete_bucket_job,
    TaskType.NAMESPACES_DELETE: delete_namespace_job,
    TaskType.BUCKETS_UPLOADS_CONFIRM: confirm_job,
    TaskType.BUCKETS_UPLOADS_BATCH_CONFIRM: batch_confirm_job,
    TaskType.ENGINE_CLUSTER_BUILD: cluster_build_job,
    TaskType.TAXONOMIES_MATERIALIZE: apply_job,
    TaskType.EVALUATIONS_RUN: evaluation_job,
    TaskType.COLLECTIONS_DOCUMENTS_BULK_DELETE: remove_batch_documents_job,  # DELETE .../batches/{id}/documents
}

# What killing a task must also stop (DELETE /v1/tasks/{id}); other task types are just canceled.
KILL_HOOKS: dict[str, KillHook] = {
    TaskType.BUCKETS_BATCHES_PROCESS: cancel_from_task,  # the whole batch
    TaskType.ENGINE_FEATURE_EXTRACTOR_RUN: cancel_from_task,  # a tier task: the whole batch too
    TaskType.BUCKETS_UPLOADS_CONFIRM: fail_killed_confirm,  # the upload it was confirming
    TaskType.ENGINE_CLUSTER_BUILD: cancel_cluster_run,  # the cluster run it executes
}


# What a schedule trigger does when it fires, by the kind of target it names (engine/triggers.py).
TRIGGER_ACTIONS: dict[str, TriggerAction] = {
    "cluster": fire_cluster,  # queue a cluster run
    "alert_evaluation": fire_alert,  # evaluate an alert (notifies through its webhooks when it holds)
    "retriever_execution": fire_retriever,  # run a saved retriever
    "taxonomy_enrichment": fire_taxonomy,  # queue apply-taxonomy on a collection
    "collection_trigger": fire_collection,  # re-run a collection over its source buckets
    "batch_rerun": fire_batch_rerun,  # resubmit a finished batch, or retry its failed documents
}
# What the trigger loop also watches for, with the jobs it starts (engine/triggers.py).
TRIGGER_WATCHERS: dict[str, WatcherFactory] = {
    "cluster_auto_execute": AutoExecutions,  # re-run clusters after batches write their collections
}

# What else the trigger loop does on each poll.
TRIGGER_SWEEPS: list[Callable[[JobContext], int]] = [
    evaluate_pending,  # alerts marked by ingest, claimed under a lease (at least once)
    check_system_alerts,  # system alerts whose check is due
    sweep_old_events,  # finished deliveries and events past STRATAFLOW_EVENTS_RETENTION_DAYS (throttled)
    settle_firings,  # trigger.execution.completed / failed once a firing's job has ended
]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    jobs: JobRunner
    index: DocumentIndex
    runner: Runner
    scheduler: Scheduler
    outbound: OutboundClient
    first_key: IssuedKey | None = None
    owns_runner: bool = True
    extras: dict[str, object] = field(default_factory=dict)
    triggers: TriggerLoop | None = None
    events: EventDispatcher | None = None

    @property
    def webhook_rules(self) -> WebhookRules:
        return WebhookRules(self.outbound, self.secret_box, self.settings.events_max_timeout_s)

    @property
    def secret_box(self) -> SecretBox:
        box = self.extras.get("secret_box")
        if not isinstance(box, SecretBox):
            box = self.extras["secret_box"] = SecretBox.from_settings(self.settings)
        return box

    @property
    def object_writer(self) -> ObjectWriter:
        return ObjectWriter(self.blobs, BlobSources(self.settings.max_inline_blob_bytes, self.outbound))

    def start_background(self) -> None:
        """Background jobs and the tier scheduler (the API server and `strataflow worker`).

        An API-only process (STRATAFLOW_API_ONLY) runs neither: workers do.
        """
        if self.settings.api_only:
            return
        self.jobs.start()
        self.scheduler.start()
        if self.triggers is not None:
            self.triggers.start()
        if self.events is not None:
            self.events.start()

    def stop_background(self) -> None:
        if self.events is not None:
            self.events.stop()
        if self.triggers is not None:
            self.triggers.stop()
        self.scheduler.stop()
        self.jobs.stop()

    def wake_scheduler(self) -> None:
        """A batch was submitted or retried here: start it now rather than at the next poll."""
        self.scheduler.notify()

    def close(self) -> None:
        self.stop_background()
        if self.events is not None:
            self.events.close()
        self.outbound.close()  # kept-alive webhook connections
        if self.owns_runner:
            self.runner.close()
        self.db.dispose()


class NoRunner:
    """The runner of an API-only process: it extracts nothing and connects to nothing (no Ray)."""

    name = "none"
    pipelines: Pipelines | None = None

    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        raise RuntimeError("this process runs the API only (STRATAFLOW_API_ONLY): workers run extraction")

    def close(self) -> None:
        return None


def open_runner(settings: Settings) -> Runner:
    if settings.engine == "ray":
        from strataflow.engine.runners.ray import RayRunner  # imported lazily: ray is heavy

        return RayRunner.from_settings(settings)
    from strataflow.engine.runners.local import LocalRunner

    threads = settings.engine_threads or max(1, (os.cpu_count() or 1) // settings.engine_processes)
    return LocalRunner(settings.engine_processes, threads, settings.worker_memory_mb)


def open_index(settings: Settings) -> DocumentIndex:
    return DocumentIndex(
        settings.resolved_index_uri,
        vector_index_min_rows=settings.vector_index_min_rows,
        storage_options=index_storage_options(settings),
        locks=index_write_locks(settings),
    )


def open_runtime(settings: Settings, runner: Runner | None = None) -> Runtime:
    """Create the data dir, migrate the schema, and make the first admin key if needed.

    A `runner` may be shared between runtimes (its workers hold models, not state).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Collections are described (vision features, their dimensions) from this process's models directory.
    vision_catalog.configure(settings.models_dir, settings.vision_model)
    db = Database(settings.resolved_database_url)
    upgrade_to_head(db)
    blobs = open_blob_store(settings)
    with db.transaction() as session:
        first_key = bootstrap(session, settings.admin_key_path, settings.api_key)
    index = open_index(settings)
    # One per process: it owns the fetch cap. An unreadable STRATAFLOW_OUTBOUND_ALLOW fails the start here.
    outbound = OutboundClient(OutboundPolicy.from_settings(settings))
    context = JobContext(db=db, blobs=blobs, settings=settings, services={"index": index, "outbound": outbound})
    jobs = JobRunner(context, JOB_HANDLERS, settings.task_workers, settings.task_poll_interval_s)
    owns_runner = runner is None
    # An API replica needs the database and the blob store, nothing else: no pool, no Ray.
    runner = runner or (NoRunner() if settings.api_only else open_runner(settings))
    executor = BatchTierExecutor(db, blobs, index, runner, settings)
    scheduler = Scheduler(
        db,
        executor,
        lease_s=settings.tier_lease_s,
        poll_interval_s=settings.task_poll_interval_s,
        workers=settings.scheduler_workers,
    )
    # Schedules are minute-grained: polling them faster than once a second only costs queries.
    triggers = TriggerLoop(
        context,
        TRIGGER_ACTIONS,
        max(1.0, settings.task_poll_interval_s),
        watchers=TRIGGER_WATCHERS,
        sweeps=TRIGGER_SWEEPS,
    )
    box = SecretBox.from_settings(settings)
    events = EventDispatcher(db, outbound, box, settings) if settings.events_dispatcher else None
    return Runtime(
        settings=settings,
        db=db,
        blobs=blobs,
        jobs=jobs,
        index=index,
        runner=runner,
        scheduler=scheduler,
        outbound=outbound,
        first_key=first_key,
        owns_runner=owns_runner,
        triggers=triggers,
        events=events,
        extras={"secret_box": box},
    )
