"""The result set the stages share: hits (a document and its score), field access, and fusion."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.index.records import LINEAGE_COLUMNS, StoredDocument, search_text

RRF_K = 60  # the usual constant: damps the head of each ranking so no single list dominates
FUSIONS = ("rrf_coverage", "rrf", "weighted", "max", "dbsf")
COVERAGE_POWER = 2  # chosen with the evaluation sets (docs/retrievers.md, "Hybrid fusion"): 1 and 3 also win
_TOKEN = re.compile(r"[^\W_]+")


@dataclass
class Hit:
    document: StoredDocument
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # per search, for explaining a fused score

    @property
    def key(self) -> tuple[str, str]:
        return self.document.collection_id, self.document.document_id


def field_value(hit: Hit, path: str) -> Any:
    """A field of the hit's document: payload paths, `_internal...` paths, lineage names, score."""
    doc = hit.document
    if path in ("score", "_score"):
        return hit.score
    if path in ("document_id", "collection_id", "created_at", "updated_at"):
        return getattr(doc, path)
    if path in LINEAGE_COLUMNS:
        return doc.lineage.get(path)
    parts = path.split(".")
    value: Any = doc.internal if parts[0] == "_internal" else doc.payload
    for part in parts[1:] if parts[0] == "_internal" else parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _min_max(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return low, (high - low) or 1.0


def _normalisers(kind: str, ranking: list[Hit]) -> Any:
    scores = [h.score for h in ranking]
    if kind == "weighted":
        low, span = _min_max(scores)
        return lambda s: (s - low) / span
    # dbsf: scale by the score distribution (mean ± 3 standard deviations), so lists with
    # different score ranges meet on one scale without one outlier setting it.
    mean = statistics.fmean(scores)
    spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    low, span = mean - 3 * spread, (6 * spread) or 1.0
    return lambda s: (s - low) / span


def fuse(rankings: list[tuple[str, list[Hit], float]], method: str) -> list[Hit]:
    """Merge ranked lists [(name, hits best first, weight)] into one list, best first."""
    if method not in FUSIONS:
        raise BadRequestError(
            f"Unknown fusion '{method}'; use one of {', '.join(FUSIONS)}",
            {"fusion": method, "supported": list(FUSIONS)},
        )
    merged: dict[tuple[str, str], Hit] = {}
    for name, ranking, weight in rankings:
        if not ranking:
            continue
        normalise = _normalisers(method, ranking) if method in ("weighted", "dbsf") else None
        for rank, hit in enumerate(ranking, start=1):
            if method in ("rrf", "rrf_coverage"):  # coverage needs a query text: hybrid_search applies it
                contribution = weight / (RRF_K + rank)
            elif normalise is not None:
                contribution = weight * normalise(hit.score)
            else:
                contribution = hit.score
            found = merged.get(hit.key)
            if found is None:
                found = merged[hit.key] = Hit(hit.document, contribution if method != "max" else hit.score)
            elif method == "max":
                found.score = max(found.score, hit.score)
            else:
                found.score += contribution
            found.scores[name] = hit.score
    return sorted(merged.values(), key=lambda h: (-h.score, h.document.document_id))


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def term_coverage(query: str, document: StoredDocument) -> float:
    """The share of the query's distinct words that the document's text holds exactly (lower-cased)."""
    wanted = _tokens(query)
    return len(wanted & _tokens(search_text(document.payload))) / len(wanted) if wanted else 0.0


def fuse_with_coverage(
    vector: list[Hit], text: list[Hit], query: str, vector_weight: float, text_weight: float
) -> list[Hit]:
    """Reciprocal rank fusion where a full-text hit counts in proportion to how much of the query it
    holds word for word (squared). BM25 ranks any match, and a stemmed match on one common word of a
    descriptive query would otherwise earn as much as the exact name or code the user typed; those
    weak matches are what pushed relevant vector hits out of plain RRF's top 10."""
    merged: dict[tuple[str, str], Hit] = {}
    for rank, hit in enumerate(vector, start=1):
        found = merged.setdefault(hit.key, Hit(hit.document, 0.0))
        found.score += vector_weight / (RRF_K + rank)
        found.scores["vector"] = hit.score
    for rank, hit in enumerate(text, start=1):
        factor = term_coverage(query, hit.document) ** COVERAGE_POWER
        found = merged.setdefault(hit.key, Hit(hit.document, 0.0))
        found.score += text_weight * factor / (RRF_K + rank)
        found.scores["text"] = hit.score
    return sorted(merged.values(), key=lambda h: (-h.score, h.document.document_id))
