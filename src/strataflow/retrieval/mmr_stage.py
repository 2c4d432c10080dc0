"""The `mmr` stage: maximal marginal relevance, trading each hit's relevance against its likeness
to the hits already picked.

Likeness is measured one of three ways, chosen by which parameter is given (at most one):

- `diversity_feature_uri`: cosine similarity of one embedding (the default, with the
  collection's first vector index when nothing is named);
- `diversity_features`: several embeddings, their cosine similarities weighted (weights are
  normalised to sum to 1), for content whose likeness spans modalities;
- `diversity_fields`: no embeddings: the weighted share of the named fields whose values are
  equal, so at most one hit per category comes first while others remain.

Relevance is the hit's score, or the numeric field `score_field` names, scaled to [0, 1]. Each
picked hit records the MMR value it was picked with at `mmr_score_field` (default `scores.mmr`).
"""

from __future__ import annotations

import json
from typing import Any, Self

import numpy as np
from pydantic import AliasChoices, BaseModel, Field, model_validator

from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit, field_value
from strataflow.retrieval.shaping_stages import hit_vectors


class DiversityFeature(BaseModel):
    feature_uri: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0.0, le=1.0)


class MmrParams(StageParams):
    """The SDK's StageParamsMmr."""

    lambda_: float = Field(default=0.7, ge=0.0, le=1.0, alias="lambda")
    top_k: int | None = Field(default=None, ge=1)
    feature_uri: str | None = Field(default=None, validation_alias=AliasChoices("feature_uri", "diversity_feature_uri"))
    diversity_features: list[DiversityFeature] | None = Field(default=None, min_length=1, max_length=8)
    diversity_fields: list[str] | None = Field(default=None, min_length=1, max_length=16)
    diversity_field_weights: dict[str, float] | None = None
    score_field: str = "score"
    mmr_score_field: str | None = "scores.mmr"
    similarity_metric: str = "cosine"

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        modes = [m for m in ("feature_uri", "diversity_features", "diversity_fields") if getattr(self, m)]
        if len(modes) > 1:
            raise ValueError(f"mmr measures diversity one way: give one of {', '.join(modes)}")
        if self.similarity_metric.lower() != "cosine":
            raise ValueError("mmr compares embeddings by cosine similarity only")
        unknown = sorted(set(self.diversity_field_weights or {}) - set(self.diversity_fields or []))
        if unknown:
            raise ValueError(f"diversity_field_weights names fields not in diversity_fields: {', '.join(unknown)}")
        if self.diversity_features and not sum(f.weight for f in self.diversity_features):
            raise ValueError("diversity_features weights sum to 0")
        return self


def _unit_rows(vectors: list[list[float] | None]) -> np.ndarray[Any, Any]:
    """The vectors as unit rows (a hit without the vector: a zero row, like nothing)."""
    dims = max((len(v) for v in vectors if v is not None), default=0)
    matrix = np.array([v if v is not None else [0.0] * dims for v in vectors], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def _embedding_likeness(
    ctx: StageContext, pool: list[Hit], features: list[tuple[str | None, float]]
) -> np.ndarray[Any, Any]:
    """Weighted cosine similarities; a feature of None is the collection's first vector index."""
    total = sum(weight for _, weight in features)
    likeness = np.zeros((len(pool), len(pool)), dtype=np.float32)
    for uri, weight in features:
        rows = _unit_rows(hit_vectors(ctx, pool, uri))
        likeness += (weight / total) * (rows @ rows.T)
    return likeness


def _field_likeness(pool: list[Hit], fields: list[str], weights: dict[str, float]) -> np.ndarray[Any, Any]:
    """The weighted share of fields two hits hold equal values in (a missing value matches nothing)."""
    shares = {f: weights.get(f, 1.0) for f in fields}
    total = sum(shares.values()) or 1.0
    likeness = np.zeros((len(pool), len(pool)), dtype=np.float32)
    for name, weight in shares.items():
        keys = [field_value(h, name) for h in pool]
        codes = [json.dumps(k, sort_keys=True, default=str) if k is not None else None for k in keys]
        same = np.array([[a is not None and a == b for b in codes] for a in codes], dtype=np.float32)
        likeness += (weight / total) * same
    return likeness


def _relevance(pool: list[Hit], score_field: str) -> np.ndarray[Any, Any]:
    raw = [field_value(h, score_field) for h in pool]
    scores = np.array(
        [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0 for v in raw], dtype=np.float32
    )
    span = float(scores.max() - scores.min()) or 1.0
    scaled: np.ndarray[Any, Any] = (scores - scores.min()) / span
    return scaled


def _record(hit: Hit, path: str, value: float) -> None:
    """Store the MMR value at a dot path of the hit's payload (left out where a field is in the way)."""
    *parents, last = path.split(".")
    target: Any = hit.document.payload
    for part in parents:
        target = target.setdefault(part, {}) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target[last] = round(value, 6)


def mmr(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: MmrParams = parse_params(MmrParams, ctx.stage_name, raw)
    pool = list(hits or [])
    if len(pool) < 2:
        return pool
    if params.diversity_fields:
        likeness = _field_likeness(pool, params.diversity_fields, params.diversity_field_weights or {})
    else:
        features: list[tuple[str | None, float]] = [(f.feature_uri, f.weight) for f in params.diversity_features or []]
        likeness = _embedding_likeness(ctx, pool, features or [(params.feature_uri, 1.0)])
    relevance = _relevance(pool, params.score_field)
    wanted = min(params.top_k or len(pool), len(pool))
    picked: list[tuple[int, float]] = []
    closest = np.full(len(pool), -np.inf, dtype=np.float32)  # each candidate's likeness to the picked set
    remaining = np.ones(len(pool), dtype=bool)
    while len(picked) < wanted:
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = params.lambda_ * relevance - (1 - params.lambda_) * penalty
        value[~remaining] = -np.inf
        best = int(np.argmax(value))
        picked.append((best, float(value[best])))
        remaining[best] = False
        closest = np.maximum(closest, likeness[best])
    if params.mmr_score_field:
        for index, picked_with in picked:
            _record(pool[index], params.mmr_score_field, picked_with)
    return [pool[i] for i, _ in picked]
