"""Filters that try to hurt the server: catastrophic regexes, invalid ones, deep nesting.

Every one must come back quickly as a clear 400 in the ErrorResponse envelope
(or a correct result), on SQLite and on PostgreSQL, and change nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import assert_error

LIST = "/v1/buckets/docs/objects/list"
# Backreferences force backtracking in both engines: on 701 characters PostgreSQL spends
# minutes on this (measured: > 2 min), `regex` far longer.
BACKTRACKING = r"^(a+)(a+)(a+)\1\2\3$"
# An upper bound that only proves "did not hang": unguarded, these run for minutes or hours.
NOT_HUNG_S = 20.0


@pytest.fixture
def docs(client: TestClient, namespace: dict[str, Any]) -> list[str]:
    schema = {"properties": {"c": {"type": "text"}, "title": {"type": "string"}}}
    assert client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).status_code == 200
    ids = []
    for title in ("a" * 701, "a" * 40 + "!", "plain"):
        created = client.post(
            "/v1/buckets/docs/objects",
            json={"metadata": {"title": title}, "blobs": [{"property": "c", "type": "text", "data": "x"}]},
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["object_id"])
    return ids


def _regex(client: TestClient, pattern: str) -> Any:
    return client.post(LIST, json={"filters": {"field": "metadata.title", "operator": "regex", "value": pattern}})


def _listed(client: TestClient) -> list[str]:
    return sorted(o["object_id"] for o in client.post(LIST, json={"page_size": 100}).json()["results"])


def test_catastrophic_regex_is_stopped_with_a_clear_error(client: TestClient, docs: list[str]) -> None:
    started = time.monotonic()
    body = assert_error(_regex(client, BACKTRACKING), 400, "BadRequestError")
    assert time.monotonic() - started < NOT_HUNG_S
    assert "took too long" in body["error"]["message"] and body["error"]["details"]["reason"] == "timeout"
    # the worker and its connection are usable again, and the data is untouched
    assert _listed(client) == sorted(docs)


CLASSIC_REDOS = {
    "(a+)+$": ["a" * 701],
    "(a|aa)+$": ["a" * 701],
    "(.*a){20}": ["a" * 40 + "!", "a" * 701],
    "^(([a-z])+.)+[A-Z]([a-z])+$": ["a" * 701, "plain"],
}  # case-insensitive by default


def test_classic_redos_patterns_answer_or_stop(client: TestClient, docs: list[str]) -> None:
    # Engines differ: PostgreSQL's DFA answers all of these at once; `regex` (SQLite) backtracks
    # on some, e.g. (a|aa)+$ on 40 a's then '!'. Either the right answer or the clear timeout.
    for pattern, expected in CLASSIC_REDOS.items():
        started = time.monotonic()
        response = _regex(client, pattern)
        assert time.monotonic() - started < NOT_HUNG_S
        if response.status_code == 400:
            assert assert_error(response, 400)["error"]["details"]["reason"] == "timeout", pattern
            continue
        assert response.status_code == 200, response.text
        assert sorted(o["metadata"]["title"] for o in response.json()["results"]) == sorted(expected), pattern


def test_regex_follows_case_sensitive_on_both_engines(client: TestClient, docs: list[str]) -> None:
    # SQLite used to ignore the case-insensitive default (SQLAlchemy drops regex flags there).
    def titles(filters: dict[str, Any]) -> list[str]:
        response = client.post(LIST, json={"filters": filters})
        assert response.status_code == 200, response.text
        return [o["metadata"]["title"] for o in response.json()["results"]]

    cond = {"field": "metadata.title", "operator": "regex", "value": "^PLAIN$"}
    assert titles(cond) == ["plain"]
    assert titles({"AND": [cond], "case_sensitive": True}) == []
    assert titles({**cond, "value": "(?s)^PL.IN$"}) == ["plain"]  # its own leading options are kept


def test_invalid_regex_is_a_400_naming_the_pattern(client: TestClient, docs: list[str]) -> None:
    for pattern in ("(", "[z-a]", "a{2,1}"):
        body = assert_error(_regex(client, pattern), 400, "BadRequestError")
        assert "not a valid regular expression" in body["error"]["message"], pattern
        assert body["error"]["details"]["reason"] == "invalid_pattern"


def _nested(depth: int) -> bytes:
    leaf = '{"field": "metadata.title", "value": "x"}'
    return ('{"filters": ' + '{"AND": [' * depth + leaf + "]}" * depth + "}").encode()


def test_deeply_nested_filters_are_refused(client: TestClient, docs: list[str]) -> None:
    # 13: over our MAX_DEPTH; 400: parses, recursion would still be deep; 5000 and 200k:
    # past Python's recursion limit in the JSON parser itself (must not surface as a 500).
    for depth in (13, 400, 5000, 200_000):
        response = client.post(LIST, content=_nested(depth), headers={"Content-Type": "application/json"})
        body = assert_error(response, 400, "BadRequestError")
        assert "nest deeper" in body["error"]["message"] or "parsing the body" in body["error"]["message"]


def test_nesting_deep_but_within_the_limit_works(client: TestClient, docs: list[str]) -> None:
    response = client.post(LIST, content=_nested(12), headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["results"] == []


def test_deep_nesting_in_retriever_and_document_filters(client: TestClient, docs: list[str]) -> None:
    # Other routes that take a filter tree go through the same parser and the same limits.
    for url in ("/v1/tasks/list", "/v1/buckets/list", "/v1/buckets/docs/uploads/list"):
        response = client.post(url, content=_nested(5000), headers={"Content-Type": "application/json"})
        assert_error(response, 400, "BadRequestError")
        response = client.post(url, content=_nested(13), headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422), f"{url}: {response.status_code} {response.text}"
        assert response.json()["success"] is False
