"""Running a retriever: stages in order over one shared result set, with statistics and events.

`steps` yields the events a streaming client sees (stage_start, stage_complete, stage_error,
execution_complete); a plain execute consumes them and returns the last one's body. A stage
failure yields stage_error and then raises, so a plain execute answers with the error status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.context import HitEnricher, StageContext
from strataflow.retrieval.features import QueryEmbedder
from strataflow.retrieval.inputs import resolve
from strataflow.retrieval.results import Hit
from strataflow.retrieval.stages import stage_kind
from strataflow.retrieval.vision_queries import VisionQueries
from strataflow.services.documents.model import document_view
from strataflow.services.documents.vector_choice import ALL_VECTORS, NO_VECTORS
from strataflow.store.pagination import decode_cursor, encode_cursor
from strataflow.store.tables import Collection

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class ResultPage:
    """Which slice of the final hits to return, and how the client asked for it."""

    start: int = 0
    size: int = DEFAULT_PAGE_SIZE
    method: str = "offset"

    @classmethod
    def from_request(cls, pagination: dict[str, Any] | None, limit: int | None, offset: int | None) -> ResultPage:
        spec = pagination or {}
        method = str(spec.get("method") or "offset").lower()
        try:
            if method == "cursor":
                size = int(_first(spec.get("limit"), limit, DEFAULT_PAGE_SIZE))
                start = decode_cursor(spec["cursor"]) if spec.get("cursor") else 0
            elif method == "offset":
                size = int(_first(spec.get("page_size"), limit, DEFAULT_PAGE_SIZE))
                number = int(_first(spec.get("page_number"), 1))
                if number < 1:
                    raise ValueError("page_number")
                start = offset if offset is not None and spec.get("page_number") is None else (number - 1) * size
            else:
                raise BadRequestError(
                    f"Pagination method '{method}' is not supported; use offset or cursor", {"method": method}
                )
        except (TypeError, ValueError):
            raise BadRequestError("Invalid pagination values", {"pagination": spec}) from None
        if not 1 <= size <= MAX_PAGE_SIZE or start < 0:
            raise BadRequestError(
                f"Page size must be 1-{MAX_PAGE_SIZE} and the page number at least 1", {"pagination": spec}
            )
        return cls(start, size, method)

    def describe(self, total: int) -> dict[str, Any]:
        has_more = self.start + self.size < total
        number = self.start // self.size + 1
        return {
            "method": self.method,
            "total": total,
            "page": number,
            "page_number": number,
            "page_size": self.size,
            "total_pages": -(-total // self.size),
            "has_next": has_more,
            "next_page": str(number + 1) if has_more else None,
            "previous_page": str(number - 1) if number > 1 else None,
            "next_cursor": encode_cursor(self.start + self.size) if has_more else None,
        }


@dataclass
class Execution:
    """One run of a pipeline: what it searches, with which inputs, and how results come back."""

    index: DocumentIndex
    collections: list[Collection]
    stages: list[dict[str, Any]]
    inputs: dict[str, Any]
    page: ResultPage = field(default_factory=ResultPage)
    retriever_id: str | None = None
    with_vectors: bool = False
    blobs: BlobStore | None = None
    max_time_ms: int | None = None
    taxonomies: dict[str, HitEnricher] = field(default_factory=dict)
    vision: VisionQueries | None = None  # how image/text queries of vision features are encoded here
    extra_collections: dict[str, Collection] = field(default_factory=dict)
    execution_id: str = field(default_factory=lambda: new_id("execution"))
    # What the run left behind, for the execution record (services/retrievers/history.py).
    ranked: list[Hit] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    stages_completed: int = 0
    elapsed_ms: float = 0.0
    status: str = "pending"
    aggregations: dict[str, Any] = field(default_factory=dict)

    def steps(self) -> Iterator[dict[str, Any]]:
        started = time.perf_counter()
        embedder = QueryEmbedder(self.index, self.vision)
        hits: list[Hit] | None = None
        statistics = self.statistics
        status = "completed"
        for position, stage in enumerate(self.stages):
            name, stage_id = stage["stage_name"], stage["config"]["stage_id"]
            ctx = StageContext(
                self.index,
                self.collections,
                embedder,
                stage_name=name,
                taxonomies=self.taxonomies,
                extra_collections=self.extra_collections,
            )
            yield {
                "event": "stage_start",
                "execution_id": self.execution_id,
                "stage_name": name,
                "stage_id": stage_id,
                "stage_index": position,
            }
            stage_started = time.perf_counter()
            count_in = len(hits) if hits is not None else 0  # a first stage searches whole collections
            try:
                parameters = resolve(stage["config"]["parameters"], self.inputs)
                hits = stage_kind(stage_id, position).run(ctx, parameters, hits)
            except Exception as exc:
                self.status, self.elapsed_ms = "failed", _ms(started)
                statistics[name] = {**_stage_statistics(stage_id, position, count_in, 0, _ms(stage_started), ctx.notes)}
                statistics[name]["error"] = str(getattr(exc, "message", exc))
                yield {
                    "event": "stage_error",
                    "execution_id": self.execution_id,
                    "stage_name": name,
                    "stage_id": stage_id,
                    "stage_index": position,
                    "error": str(getattr(exc, "message", exc)),
                }
                raise
            stats = _stage_statistics(stage_id, position, count_in, len(hits), _ms(stage_started), ctx.notes)
            statistics[name] = stats
            if "aggregations" in ctx.outputs:
                self.aggregations[name] = ctx.outputs["aggregations"]
            self.stages_completed = position + 1
            yield {
                "event": "stage_complete",
                "execution_id": self.execution_id,
                "stage_name": name,
                "stage_index": position,
                "statistics": stats,
            }
            if self.max_time_ms is not None and _ms(started) > self.max_time_ms and position + 1 < len(self.stages):
                status = "partial"  # the time budget ran out: later stages are skipped, what we have is returned
                break
        self.ranked, self.status, self.elapsed_ms = list(hits or []), status, _ms(started)
        body = self._response(self.ranked, statistics, status, self.elapsed_ms)
        yield {"event": "execution_complete", "execution_id": self.execution_id, "result": body}

    def run(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for event in self.steps():
            if event["event"] == "execution_complete":
                result = event["result"]
        return result

    def _response(self, hits: list[Hit], statistics: dict[str, Any], status: str, elapsed_ms: float) -> dict[str, Any]:
        shown = hits[self.page.start : self.page.start + self.page.size]
        vectors = self._vectors(shown) if self.with_vectors else {}
        documents = []
        for hit in shown:
            doc = vectors.get(hit.key, hit.document)
            view = document_view(doc, vectors=ALL_VECTORS if self.with_vectors else NO_VECTORS, blobs=self.blobs)
            view["score"] = hit.score
            if hit.scores:
                view["search_scores"] = hit.scores
            documents.append(view)
        return {
            "execution_id": self.execution_id,
            "status": status,
            "retriever_id": self.retriever_id,
            "documents": documents,
            "pagination": self.page.describe(len(hits)),
            "stage_statistics": {"stages": statistics, "total_time_ms": elapsed_ms},
            # The last stage's facets, where a facet consumer looks first (they stay in its statistics too).
            "facets": next(
                (s["metadata"]["facets"] for s in reversed(statistics.values()) if "facets" in s["metadata"]), None
            ),
            **({"aggregations": self.aggregations} if self.aggregations else {}),
            "budget": {
                "credits_used": 0.0,
                "time_elapsed_ms": elapsed_ms,
                "max_time_ms": self.max_time_ms,
                "exceeded": status == "partial",
            },
        }

    def _vectors(self, hits: list[Hit]) -> dict[tuple[str, str], Any]:
        """Vectors are read only for the page returned, not for every candidate."""
        found = {}
        for collection_id in {h.document.collection_id for h in hits}:
            ids = [h.document.document_id for h in hits if h.document.collection_id == collection_id]
            for doc in self.index.get_many(collection_id, ids, with_vectors=True):
                found[(collection_id, doc.document_id)] = doc
        return found


def _stage_statistics(
    stage_id: str, position: int, count_in: int, count_out: int, duration_ms: float, notes: dict[str, Any]
) -> dict[str, Any]:
    """The SDK's StageStatistics; what the stage itself reported goes under `metadata`."""
    return {
        "input_count": count_in,
        "output_count": count_out,
        "duration_ms": duration_ms,
        "efficiency": round(count_out / count_in, 4) if count_in else 0.0,
        "stage_cache_hit": False,
        "metadata": {"stage_id": stage_id, "stage_index": position, **notes},
    }


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
