"""Ranking metrics of one ranked list against its relevant documents, at a cutoff k.

Definitions (the ones docs/retrievers.md states, so a client can check them by hand):
- precision@k = relevant among the first k / k
- recall@k = relevant among the first k / all relevant
- f1@k, f2@k = F-beta of those two (beta 1 and 2; 0 when both are 0)
- map@k (average precision) = sum of precision@i at each rank i <= k holding a relevant document,
  divided by min(k, number relevant)
- ndcg@k = DCG / ideal DCG with DCG = sum of gain_i / log2(i + 1) over ranks i = 1..k; gain is the
  document's graded relevance when grades are given (0-5), else 1 for a relevant document
- mrr@k = 1 / rank of the first relevant document within k, 0 when none
A query without relevant documents scores 0 on every metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from strataflow.errors import BadRequestError

METRICS = ("precision", "recall", "f1", "f2", "map", "ndcg", "mrr")
ALIASES = {"ap": "map", "average_precision": "map", "reciprocal_rank": "mrr", "f1_score": "f1"}
DEFAULT_K_VALUES = (1, 3, 5, 10)


def metric_names(requested: Sequence[str] | None) -> list[str]:
    """The metrics asked for, canonical names in request order; unknown names are a 400."""
    if not requested:
        return list(METRICS)
    names: list[str] = []
    for raw in requested:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in METRICS:
            raise BadRequestError(
                f"Unknown metric '{raw}'; use one of {', '.join(METRICS)}", {"metric": raw, "supported": list(METRICS)}
            )
        if name not in names:
            names.append(name)
    return names


def _f_beta(precision: float, recall: float, beta: float) -> float:
    denominator = beta * beta * precision + recall
    return (1 + beta * beta) * precision * recall / denominator if denominator else 0.0


def _dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def score_ranking(
    ranked: Sequence[str],
    relevant: Sequence[str],
    k: int,
    metrics: Sequence[str] = METRICS,
    grades: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Each metric of `ranked` (best first; repeats after the first count as not relevant) at cutoff k."""
    wanted = set(relevant)
    if grades:
        wanted |= {doc for doc, grade in grades.items() if grade > 0}
    top: list[str] = []
    for doc in ranked:
        if doc not in top:
            top.append(doc)
        if len(top) == k:
            break
    hits = [doc in wanted for doc in top]
    found = sum(hits)
    precision = found / k
    recall = found / len(wanted) if wanted else 0.0
    values: dict[str, float] = {}
    for name in metrics:
        if not wanted:
            values[name] = 0.0
        elif name == "precision":
            values[name] = precision
        elif name == "recall":
            values[name] = recall
        elif name == "f1":
            values[name] = _f_beta(precision, recall, 1.0)
        elif name == "f2":
            values[name] = _f_beta(precision, recall, 2.0)
        elif name == "map":
            seen, total = 0, 0.0
            for rank, hit in enumerate(hits, start=1):
                if hit:
                    seen += 1
                    total += seen / rank
            values[name] = total / min(k, len(wanted))
        elif name == "ndcg":
            gain = _gain(grades)
            ideal = sorted((gain(doc) for doc in wanted), reverse=True)[:k]
            best = _dcg(ideal)
            values[name] = _dcg([gain(doc) if doc in wanted else 0.0 for doc in top]) / best if best else 0.0
        elif name == "mrr":
            values[name] = next((1.0 / rank for rank, hit in enumerate(hits, start=1) if hit), 0.0)
    return {name: round(value, 6) for name, value in values.items()}


def _gain(grades: Mapping[str, int] | None) -> Callable[[str], float]:
    if not grades:
        return lambda doc: 1.0
    return lambda doc: float(grades.get(doc, 1))


def mean_scores(rows: Sequence[Mapping[str, float]], metrics: Sequence[str]) -> dict[str, float]:
    """Macro average of each metric over the rows (0 for none)."""
    return {name: round(sum(r[name] for r in rows) / len(rows), 6) if rows else 0.0 for name in metrics}
