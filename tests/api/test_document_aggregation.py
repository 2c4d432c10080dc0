"""Aggregating documents: group_by with date transforms, range buckets, unwind, having, every function."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.collection_flows import make_bucket, text_collection
from tests.helpers import assert_error

URL = "/v1/collections/clips/documents/aggregate"
CLIPS = [
    # (title, seconds, published, tags, genre)
    ("a", 30, "2026-01-05T10:15:00+00:00", ["news", "sport"], "doc"),
    ("b", 90, "2026-01-07T23:59:00+00:00", ["news"], "doc"),
    ("c", 400, "2026-02-01T08:00:00+00:00", ["music", "news", "live"], "show"),
    ("d", 60, "2026-02-14T12:00:00+00:00", [], "show"),
    ("e", 700, "2025-12-31T23:00:00+00:00", ["sport"], "show"),
    ("f", None, "not a date", None, "doc"),
]


@pytest.fixture
def clips(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    text_collection(client, "clips", {"type": "bucket", "bucket_ids": ["docs"]})
    for title, seconds, published, tags, genre in CLIPS:
        body = {"title": title, "seconds": seconds, "published": published, "tags": tags, "genre": genre}
        response = client.post("/v1/collections/clips/documents", json=body)
        assert response.status_code == 200, response.text


def aggregate(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def by_group(results: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r["group"][key]: r["metrics"] for r in results}


def test_range_buckets_label_each_range_and_the_outside(client: TestClient, clips: None) -> None:
    counted = by_group(
        aggregate(
            client,
            {
                "range_buckets": [{"field": "seconds", "boundaries": [0, 60, 300, 600]}],
                "aggregations": [
                    {"function": "count", "alias": "n"},
                    {"function": "push", "field": "title", "alias": "t"},
                ],
            },
        ),
        "seconds",
    )
    # A value on a boundary goes into the lower range; a missing value into 'other'.
    assert counted == {
        "0-60": {"n": 2, "t": ["a", "d"]},
        "60-300": {"n": 1, "t": ["b"]},
        "300-600": {"n": 1, "t": ["c"]},
        ">600": {"n": 1, "t": ["e"]},
        "other": {"n": 1, "t": ["f"]},
    }
    named = aggregate(
        client,
        {
            "range_buckets": [{"field": "seconds", "boundaries": [50, 100], "default_bucket": "outside"}],
            "aggregations": [{"function": "count", "alias": "n"}],
        },
    )
    assert by_group(named, "seconds") == {"50-100": {"n": 2}, "outside": {"n": 4}}


def test_unwind_counts_each_element_and_having_keeps_the_big_groups(client: TestClient, clips: None) -> None:
    response = client.post(
        URL,
        json={
            "unwind": "tags",
            "group_by": [{"field": "tags", "alias": "tag"}],
            "aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "sum", "field": "seconds", "alias": "total"},
                {"function": "add_to_set", "field": "genre", "alias": "genres"},
            ],
            "having": [{"field": "n", "operator": "gte", "value": 2}],
            "sort_by": "n",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # news: a, b, c; sport: a, e; music and live (once each) fail the having; d's empty list and f's
    # missing one yield no row at all.
    assert [(r["group"]["tag"], r["metrics"]["n"]) for r in body["results"]] == [("news", 3), ("sport", 2)]
    assert body["results"][0]["metrics"]["total"] == 520.0
    assert sorted(body["results"][0]["metrics"]["genres"]) == ["doc", "show"]
    assert body["query_info"]["documents_scanned"] == 6 and body["query_info"]["rows_after_unwind"] == 7


def test_dates_truncate_and_split_into_parts(client: TestClient, clips: None) -> None:
    months = by_group(
        aggregate(
            client,
            {
                "group_by": [{"field": "published", "date_trunc": "month", "alias": "month"}],
                "aggregations": [{"function": "count", "alias": "n"}],
            },
        ),
        "month",
    )
    assert months == {
        "2026-01-01T00:00:00+00:00": {"n": 2},
        "2026-02-01T00:00:00+00:00": {"n": 2},
        "2025-12-01T00:00:00+00:00": {"n": 1},
        None: {"n": 1},  # not a date
    }
    weeks = by_group(
        aggregate(
            client,
            {
                "group_by": [{"field": "published", "date_trunc": "week", "alias": "w"}],
                "aggregations": [{"function": "count", "alias": "n"}],
                "filters": {"field": "genre", "operator": "eq", "value": "doc"},
            },
        ),
        "w",
    )
    assert weeks == {"2026-01-05T00:00:00+00:00": {"n": 2}, None: {"n": 1}}  # 5 and 7 January: one ISO week
    weekdays = by_group(
        aggregate(
            client,
            {
                "group_by": [{"field": "published", "date_part": "dayOfWeek", "alias": "dow"}],
                "aggregations": [{"function": "first", "field": "title", "alias": "first"}],
            },
        ),
        "dow",
    )
    # Monday 5 Jan = 2, Wednesday 7 Jan = 4, Sunday 1 Feb = 1, Saturday 14 Feb = 7, Wednesday 31 Dec = 4.
    assert weekdays == {
        2: {"first": "a"},
        4: {"first": "b"},
        1: {"first": "c"},
        7: {"first": "d"},
        None: {"first": "f"},
    }


def test_first_last_and_count_distinct(client: TestClient, clips: None) -> None:
    genres = by_group(
        aggregate(
            client,
            {
                "group_by": [{"field": "genre"}],
                "aggregations": [
                    {"function": "first", "field": "title", "alias": "first"},
                    {"function": "last", "field": "title", "alias": "last"},
                    {"function": "COUNT_DISTINCT", "field": "title", "distinct_field": "seconds", "alias": "lengths"},
                    {"function": "avg", "field": "seconds", "alias": "mean"},
                ],
            },
        ),
        "genre",
    )
    assert genres["doc"] == {"first": "a", "last": "f", "lengths": 2, "mean": 60.0}
    assert genres["show"] == {"first": "c", "last": "e", "lengths": 3, "mean": 1160 / 3}


def test_bad_aggregations_are_refused(client: TestClient, clips: None) -> None:
    count = [{"function": "count", "alias": "n"}]
    cases = [
        {"aggregations": count, "having": [{"field": "missing", "operator": "gt", "value": 1}]},
        {"aggregations": count, "having": [{"field": "n", "operator": "between", "value": 1}]},
        {"aggregations": count, "range_buckets": [{"field": "seconds", "boundaries": [10, 5]}]},
        {"aggregations": count, "group_by": [{"field": "published", "date_trunc": "decade"}]},
        {"aggregations": count, "group_by": [{"field": "published", "date_trunc": "day", "date_part": "hour"}]},
        {"aggregations": count, "unwind": "document_id"},
        {"aggregations": [{"function": "median", "field": "seconds", "alias": "m"}]},
        {"aggregations": [{"function": "sum", "alias": "s"}]},
    ]
    for body in cases:
        assert_error(client.post(URL, json=body), 400)
    assert_error(
        client.post(URL, json={"aggregations": count, "range_buckets": [{"field": "x", "boundaries": []}]}), 422
    )
