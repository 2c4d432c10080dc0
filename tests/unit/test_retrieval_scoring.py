"""Pure rules of scoring: the default hybrid fusion (RRF weighed by query-word coverage) and the
evaluation metrics with graded relevance, each against a hand computation."""

from __future__ import annotations

import math

import pytest

from strataflow.errors import BadRequestError
from strataflow.index.records import StoredDocument
from strataflow.retrieval.metrics import metric_names, score_ranking
from strataflow.retrieval.results import Hit, fuse_with_coverage, term_coverage


def _hit(doc_id: str, text: str, score: float) -> Hit:
    return Hit(StoredDocument(document_id=doc_id, collection_id="c", payload={"text": text}), score)


def test_a_weak_full_text_match_no_longer_outranks_the_vector_winner() -> None:
    query = "people who bring food up from the sea"
    vector = [_hit("boats", "trawlers and nets in the harbour", 0.5), _hit("noise", "who bakes bread", 0.2)]
    text = [_hit("noise", "who bakes bread", 3.0)]
    assert term_coverage(query, text[0].document) == pytest.approx(1 / 8)
    fused = fuse_with_coverage(vector, text, query, 1.0, 1.0)
    assert [h.document.document_id for h in fused] == ["boats", "noise"]
    # by hand: 1/61 for the vector winner; 1/62 + (1/8)^2/61 for the weak match
    assert fused[0].score == pytest.approx(1 / 61) and fused[1].score == pytest.approx(1 / 62 + 1 / 64 / 61)


def test_an_exact_name_keeps_its_full_weight() -> None:
    query = "QX-4471"
    vector = [_hit("other", "a kettle", 0.6), _hit("exact", "Norvik QX-4471 kettle", 0.1)]
    text = [_hit("exact", "Norvik QX-4471 kettle", 9.0)]
    fused = fuse_with_coverage(vector, text, query, 1.0, 1.0)
    assert [h.document.document_id for h in fused] == ["exact", "other"]
    assert fused[0].scores == {"vector": 0.1, "text": 9.0}


def test_graded_ndcg_and_the_other_metrics_by_hand() -> None:
    scores = score_ranking(["b", "x", "a"], ["a", "b"], 3, grades={"a": 3, "b": 1})
    dcg = 1 / math.log2(2) + 3 / math.log2(4)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert scores["ndcg"] == pytest.approx(dcg / ideal, abs=1e-6)
    assert scores["map"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-6) and scores["mrr"] == 1.0
    assert score_ranking(["x"], [], 1)["precision"] == 0.0  # no relevant documents: zero, not a division error
    assert metric_names(["AP", "ndcg", "map"]) == ["map", "ndcg"]
    with pytest.raises(BadRequestError):
        metric_names(["accuracy"])
