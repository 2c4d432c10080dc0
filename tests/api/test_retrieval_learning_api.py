"""Interactions, datasets and scoring on both databases (no documents needed): the JSON queries of
interaction listing, unique dataset names, and the score endpoint against a hand computation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import assert_error


def test_interactions_are_recorded_listed_and_checked(client: TestClient, namespace: dict[str, Any]) -> None:
    one = client.post(
        "/v1/retrievers/interactions",
        json={"document_id": "doc_a", "interaction_type": ["view", "click"], "position": 2, "user_id": "u1"},
    )
    assert one.status_code == 200, one.text
    assert one.json()["feature_id"] == "doc_a" and one.json()["interaction_type"] == ["view", "click"]
    bulk = client.post(
        "/v1/retrievers/interactions/batch",
        json={
            "interactions": [
                {"feature_id": "doc_b", "interaction_type": ["purchase"], "position": 0},
                {"feature_id": "doc_c", "interaction_type": ["click"], "position": 5, "result_set_size": 3},
                {"feature_id": "doc_d", "interaction_type": ["click"], "position": 0, "execution_id": "exec_none"},
            ]
        },
    ).json()
    assert (bulk["created"], bulk["failed"]) == (1, 2) and [r["index"] for r in bulk["results"]] == [0]
    clicks = client.post("/v1/retrievers/interactions/list", json={"interaction_type": "click"}).json()
    assert [r["feature_id"] for r in clicks["results"]] == ["doc_a"] and clicks["pagination"]["total"] == 1
    by_user = client.post("/v1/retrievers/interactions/list", json={"user_id": "u1"}).json()
    assert by_user["total"] == 1
    assert_error(client.post("/v1/retrievers/interactions/list", json={"interaction_type": "cl%"}), 400)
    assert_error(
        client.post(
            "/v1/retrievers/interactions",
            json={"feature_id": "d", "interaction_type": ["click"], "position": 0, "retriever_id": "ret_x"},
        ),
        404,
    )
    assert_error(
        client.post(
            "/v1/retrievers/interactions",
            json={"feature_id": "d", "interaction_type": ["click"], "position": 0, "result_set_size": 0},
        ),
        422,
    )
    interaction_id = one.json()["interaction_id"]
    assert client.delete(f"/v1/retrievers/interactions/{interaction_id}").status_code == 200
    assert_error(client.get(f"/v1/retrievers/interactions/{interaction_id}"), 404)


def test_datasets_and_scoring(client: TestClient, namespace: dict[str, Any]) -> None:
    body = {
        "dataset_name": "gold",
        "queries": [{"query_id": "q1", "query_input": {"query": "x"}, "relevant_documents": ["a"]}],
    }
    created = client.post("/v1/retrievers/evaluations/datasets", json=body)
    assert created.status_code == 200 and created.json()["query_count"] == 1
    assert_error(client.post("/v1/retrievers/evaluations/datasets", json=body), 409)
    assert client.get("/v1/retrievers/evaluations/datasets/gold").json()["dataset_id"] == created.json()["dataset_id"]
    assert client.get("/v1/retrievers/evaluations/datasets").json()["total"] == 1
    assert_error(client.get("/v1/retrievers/ret_missing/evaluations"), 404)

    # Ranked ["x", "a", "y", "b"] against {a, b, c}, k=4, by hand: precision 2/4, recall 2/3,
    # AP (1/2 + 2/4) / 3, reciprocal rank 1/2, nDCG (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/2).
    scored = client.post(
        "/v1/evaluations/score",
        json={
            "items": [{"predicted": ["x", "a", "y", "b"], "ground_truth": ["a", "b", "c"]}],
            "metrics": ["precision", "recall", "map", "mrr", "ndcg"],
        },
    ).json()
    assert scored["per_item"][0] == pytest.approx(
        {"precision": 0.5, "recall": 2 / 3, "map": 1 / 3, "mrr": 0.5, "ndcg": (0.63093 + 0.43068) / 2.13093}, abs=1e-5
    )
    assert_error(client.post("/v1/evaluations/score", json={"predicted": ["a"], "metrics": ["magic"]}), 400)
    assert_error(
        client.post("/v1/evaluations/score", json={"predicted": ["a"], "ground_truth": ["a"], "metrics": ["magic"]}),
        400,
    )
