"""Stages that reorder or thin the hits by relevance: sort_relevance and sample."""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit, field_value


class SortRelevanceParams(StageParams):
    """The SDK's StageParamsSortRelevance."""

    score_field: str = "score"
    direction: str = Field(default="desc", pattern="^(?i)(asc|desc)$")
    feature_address: str | None = None
    missing_score: str = Field(default="bottom", pattern="^(?i)(bottom|top|zero)$")


class SampleParams(StageParams):
    """The SDK's StageParamsSample."""

    count: int = Field(default=10, ge=1, le=1000)
    strategy: str = Field(default="random", pattern="^(?i)(random|stratified|top)$")
    stratify_by: str | None = None
    min_per_stratum: int = Field(default=1, ge=0)
    seed: int | None = None
    preserve_top_k: int = Field(default=0, ge=0)


def relevance_of(hit: Hit, score_field: str, feature_address: str | None) -> float | None:
    """The number a hit is ranked by: its score, one search's score, or a numeric field."""
    if feature_address:
        # per-search scores are keyed "<position>:<feature uri>" (feature_search) or vector/text (hybrid)
        for name, value in hit.scores.items():
            if name == feature_address or name.split(":", 1)[-1] == feature_address:
                return value
        return None
    for prefix in ("scores.", "search_scores."):
        if score_field.startswith(prefix) and score_field[len(prefix) :] in hit.scores:
            return hit.scores[score_field[len(prefix) :]]
    value = field_value(hit, score_field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def sort_relevance(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: SortRelevanceParams = parse_params(SortRelevanceParams, ctx.stage_name, raw)
    descending = params.direction.lower() == "desc"
    scored: list[tuple[float, Hit]] = []
    missing: list[Hit] = []
    for hit in hits or []:
        value = relevance_of(hit, params.score_field, params.feature_address)
        if value is None and params.missing_score.lower() == "zero":
            value = 0.0
        if value is None:
            missing.append(hit)
        else:
            scored.append((value, hit))
    scored.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep their earlier order
    ordered = [hit for _, hit in scored]
    ctx.notes.update(missing_score=len(missing))
    return missing + ordered if params.missing_score.lower() == "top" else ordered + missing


def sample(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    """`count` hits: the first `preserve_top_k` always, the rest drawn at random (seeded when `seed`
    is given), or per stratum of `stratify_by` (at least `min_per_stratum` each, the rest in
    proportion). The sample keeps the ranking order."""
    params: SampleParams = parse_params(SampleParams, ctx.stage_name, raw)
    pool = list(hits or [])
    if len(pool) <= params.count:
        return pool
    keep = min(params.preserve_top_k, params.count)
    chosen = set(range(keep))
    rest = list(range(keep, len(pool)))
    wanted = params.count - keep
    rng = random.Random(params.seed)
    strategy = params.strategy.lower()
    if strategy == "top":
        chosen |= set(rest[:wanted])
    elif strategy == "random":
        chosen |= set(rng.sample(rest, wanted))
    else:
        if not params.stratify_by:
            raise BadRequestError("The stratified sample needs 'stratify_by'", {"stage": ctx.stage_name})
        chosen |= _stratified(pool, rest, wanted, params, rng)
    ctx.notes.update(sampled=len(chosen), population=len(pool))
    return [pool[i] for i in sorted(chosen)]


def _stratified(pool: list[Hit], rest: list[int], wanted: int, params: SampleParams, rng: random.Random) -> set[int]:
    strata: dict[str, list[int]] = {}
    for i in rest:
        strata.setdefault(repr(field_value(pool[i], params.stratify_by or "")), []).append(i)
    picked: set[int] = set()
    for members in strata.values():  # the floor per stratum first
        picked |= set(rng.sample(members, min(params.min_per_stratum, len(members))))
    if len(picked) > wanted:
        return set(rng.sample(sorted(picked), wanted))
    left = wanted - len(picked)
    remaining = [i for i in rest if i not in picked]
    total = len(remaining)
    for members in strata.values():  # then in proportion to each stratum's size
        free = [i for i in members if i not in picked]
        share = min(len(free), round(left * len(free) / total)) if total else 0
        picked |= set(rng.sample(free, share))
    shortfall = wanted - len(picked)
    if shortfall > 0:  # rounding left a few places: fill them from anything not yet drawn
        picked |= set(rng.sample([i for i in rest if i not in picked], shortfall))
    return set(sorted(picked)[:wanted]) if len(picked) > wanted else picked
