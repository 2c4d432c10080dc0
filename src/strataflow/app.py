"""create_app(settings) -> FastAPI. Wiring only: routers, errors, limits, lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from strataflow import __version__
from strataflow.api import (
    alerts,
    batch_tiers,
    batches,
    batches_all,
    blobs,
    buckets,
    cluster_triggers,
    clusters,
    collections,
    documents,
    errors,
    evaluations,
    events,
    extractors,
    health,
    interactions,
    lineage,
    namespace_documents,
    namespaces,
    objects,
    org_alerts,
    retriever_runs,
    retrievers,
    tasks,
    taxonomies,
    triggers,
    uploads,
    webhooks,
)
from strataflow.api.console import ConsoleFiles
from strataflow.api.limits import BodySizeLimit
from strataflow.api.logging import RequestLogging
from strataflow.api.text_guard import TextGuard
from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime

# Routes are matched in order, one by one: tasks first, because every SDK client polls them
# (the prefixes do not overlap, so the order changes nothing else).
ROUTERS = (
    tasks,
    health,
    namespaces,
    buckets,
    objects,
    uploads,
    blobs,
    batch_tiers,
    batches,
    batches_all,
    extractors,
    collections,
    documents,
    namespace_documents,  # /v1/documents/...: ids alone, across the namespace's collections
    lineage,
    # before retrievers: /v1/retrievers/stages, /typeahead, /interactions, /evaluations are no retriever ids
    retriever_runs,
    interactions,
    evaluations,
    retrievers,
    cluster_triggers,
    clusters,
    taxonomies,
    webhooks,
    org_alerts,
    events,
    alerts,
    triggers,
)


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, run_background: bool = True
) -> FastAPI:
    """Build the API. Pass a `runtime` to share one with the caller (the CLI, tests)."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.runtime is None
        if owned:
            app.state.runtime = open_runtime(settings)
        if run_background:
            app.state.runtime.start_background()
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()
            elif run_background:
                app.state.runtime.stop_background()

    app = FastAPI(
        title="Strataflow",
        version=__version__,
        description="Self-hosted multimodal data engine speaking the Mixpeek v1 API.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    # The web console: static files, no build step; it talks to the API like any other client.
    app.mount("/console", ConsoleFiles(settings), name="console")  # with its own strict CSP
    app.add_middleware(TextGuard)  # inside the size limit: it buffers only bodies the limit let through
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_json_body_bytes)
    app.add_middleware(RequestLogging)
    return app
