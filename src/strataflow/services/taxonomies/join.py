"""The join itself: one document in, its taxonomy assignments out.

For each document the retriever's inputs are built from the input mappings (a payload
field, a literal, or one of the document's vectors), the retriever runs over the reference
collection through the ordinary retrieval pipeline, and the hits at or above `min_score`,
best first, at most `top_k`, become the document's matches. A hierarchy adds, per match,
its path from the root and its level. Nothing here writes: `enrichment.py` applies matches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from strataflow.errors import StrataflowError
from strataflow.index.store import DocumentIndex
from strataflow.paths import value_at
from strataflow.retrieval.inputs import validate_inputs
from strataflow.retrieval.pipeline import Execution, ResultPage
from strataflow.schemas.taxonomies import EnrichmentField, InputMapping
from strataflow.store.tables import Collection

LABEL_FIELDS = ("label", "name", "title", "category")  # what a node document is called, first found


@dataclass
class Subject:
    """A document to enrich: its user fields and its vectors (by storage name)."""

    document_id: str | None
    payload: dict[str, Any]
    vectors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeSearch:
    """One retriever over one level of reference nodes (a flat taxonomy has exactly one)."""

    node_key: str  # the reference collection id (hierarchy levels are named by it)
    collections: list[Collection]
    stages: list[dict[str, Any]]
    input_schema: dict[str, Any]
    mappings: list[InputMapping]
    fields: list[EnrichmentField] | None  # None: copy the node's whole payload
    label: str | None = None
    parent_key: str | None = None


@dataclass
class Match:
    node_id: str
    label: str
    score: float
    node_payload: dict[str, Any]
    fields: list[EnrichmentField] | None
    path: list[str] = field(default_factory=list)
    level: int = 0


@dataclass
class JoinPlan:
    """Everything needed to enrich documents with one taxonomy version; no database needed."""

    taxonomy_id: str
    taxonomy_name: str
    version: int
    kind: str  # flat | hierarchical
    searches: list[NodeSearch]
    top_k: int = 1
    min_score: float = 0.0
    path_field: str | None = None
    path_separator: str = "/"
    # Hierarchies only: how the assignment is written into the document (HierarchicalEnrichmentStyle:
    # full_chain, best_match, combined) and the prefix of the fields it writes (the taxonomy's name).
    style: str = "combined"
    field_prefix: str = ""
    # The application's scroll_filters: a batch enriches only the documents they select.
    filters: dict[str, Any] | None = None

    def match(self, index: DocumentIndex, subject: Subject) -> list[Match]:
        """The document's matches, best first (a path hierarchy: its one deepest node)."""
        if self.path_field is not None:
            found = path_match(subject, self.path_field, self.path_separator)
            return [found] if found is not None else []
        if self.kind == "flat":
            return search_matches(index, self.searches[0], subject, self.top_k, self.min_score)
        return self._hierarchy_matches(index, subject)

    def _hierarchy_matches(self, index: DocumentIndex, subject: Subject) -> list[Match]:
        """Each level searched; the deepest level with a match wins (ties: the better score).
        The matches of the levels above it on its path are kept too, for inherited fields."""
        by_key = {s.node_key: s for s in self.searches}
        best: dict[str, Match] = {}
        for search in self.searches:
            found = search_matches(index, search, subject, 1, self.min_score)
            if found:
                best[search.node_key] = found[0]
        if not best:
            return []

        def chain(key: str) -> list[str]:
            keys: list[str] = []
            while key in by_key and key not in keys:
                keys.insert(0, key)
                key = by_key[key].parent_key or ""
            return keys

        deepest = max(best, key=lambda k: (len(chain(k)), best[k].score))
        keys = chain(deepest)
        labels = [best[k].label if k in best else (by_key[k].label or k) for k in keys]
        winner = best[deepest]
        winner.path, winner.level = labels, len(keys) - 1
        # Fields of the ancestors that matched too: a child inherits its parents' enrichment.
        inherited = []
        for level, key in enumerate(keys[:-1]):
            if key in best:
                best[key].path, best[key].level = labels[: level + 1], level
                inherited.append(best[key])
        return [winner, *inherited]


def mapped_inputs(mappings: list[InputMapping], subject: Subject) -> dict[str, Any] | None:
    """The retriever's inputs for this document; None when a mapped value is missing."""
    inputs: dict[str, Any] = {}
    for mapping in mappings:
        if mapping.source_type == "literal":
            value = mapping.override
        elif mapping.source_type == "vector":
            value = subject.vectors.get(mapping.path or "")
        else:
            value = value_at(subject.payload, mapping.path or mapping.input_key)
            if value is None and isinstance(subject.payload.get("payload"), dict):
                value = value_at(subject.payload["payload"], mapping.path or mapping.input_key)
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            return None
        inputs[mapping.input_key] = list(value) if mapping.source_type == "vector" else value
    return inputs


def search_matches(
    index: DocumentIndex, search: NodeSearch, subject: Subject, top_k: int, min_score: float
) -> list[Match]:
    inputs = mapped_inputs(search.mappings, subject)
    if inputs is None:
        return []
    execution = Execution(
        index=index,
        collections=search.collections,
        stages=search.stages,
        inputs=validate_inputs(search.input_schema, inputs),
        page=ResultPage(0, top_k),
    )
    matches = []
    for hit in execution.run()["documents"]:
        score = float(hit.get("score") or 0.0)
        if score < min_score:
            continue
        payload = {
            k: v
            for k, v in hit.items()
            if k not in ("document_id", "collection_id", "_internal", "document_blobs", "score", "search_scores")
        }
        label = next((str(payload[f]) for f in LABEL_FIELDS if payload.get(f) not in (None, "")), hit["document_id"])
        matches.append(Match(hit["document_id"], label, score, payload, search.fields, [label], 0))
    return matches[:top_k]


def path_match(subject: Subject, path_field: str, separator: str) -> Match | None:
    """A path hierarchy: the document's own path names its node; no search is run."""
    segments = path_segments(value_at(subject.payload, path_field), separator)
    if not segments:
        return None
    return Match(path_node_id(segments), segments[-1], 1.0, {}, [], segments, len(segments) - 1)


def path_segments(value: Any, separator: str) -> list[str]:
    if isinstance(value, str):
        return [s for s in value.split(separator) if s]
    if isinstance(value, list):
        return [str(s) for s in value if s not in (None, "")]
    return []


def path_node_id(segments: list[str]) -> str:
    """Stable: the same path prefix is the same node in every document and every run."""
    return "node_" + hashlib.sha256("\x1f".join(segments).encode()).hexdigest()[:16]


def path_nodes(segments: list[str]) -> list[dict[str, Any]]:
    """The TaxonomyPathNode of every prefix of a path, root first."""
    return [
        {
            "node_id": path_node_id(segments[: i + 1]),
            "label": segments[i],
            "path": segments[: i + 1],
            "parent_id": path_node_id(segments[:i]) if i else None,
            "level": i,
        }
        for i in range(len(segments))
    ]


def safe_match(plan: JoinPlan, index: DocumentIndex, subject: Subject) -> tuple[list[Match], str | None]:
    """Matches, or none and the reason when this document's join failed (a bad vector, ...)."""
    try:
        return plan.match(index, subject), None
    except StrataflowError as exc:
        return [], exc.message
