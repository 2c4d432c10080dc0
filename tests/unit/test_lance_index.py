"""The LanceDB document index: the filter compiler against real tables, upserts, stale removal, indexes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from strataflow.errors import BadRequestError
from strataflow.extractors.text_models import embed_texts
from strataflow.index.filters import Target, compile_filter
from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex

PAYLOADS = [
    {
        "title": "Apple pie",
        "views": 10,
        "score": 1.5,
        "draft": False,
        "tags": ["food", "sweet"],
        "meta": {"lang": "en", "a-b": "dash"},
    },
    {"title": "Banana split", "views": 25, "score": 2.5, "draft": True, "tags": ["food"], "meta": {"lang": "fr"}},
    {"title": "O'Brien's 100% _real_ notes", "views": 40, "score": None, "tags": [], "meta": {}},
    {"title": "Größe 東京 café", "views": "many", "draft": False},
]


def resolve(name: str) -> Target:
    if name in ("document_id", "root_object_id", "created_at"):
        return Target(name)
    return Target("payload", tuple(name.split(".")))


@pytest.fixture
def index(tmp_path: Path) -> DocumentIndex:
    store = DocumentIndex(str(tmp_path / "index"), vector_index_min_rows=10_000)
    store.create_table("col_test", {})
    now = timestamp()
    store.upsert(
        "col_test",
        [
            StoredDocument(
                f"doc_{i}",
                "col_test",
                payload,
                {"lineage": {"root_object_id": f"obj_{i % 2}"}},
                created_at=now,
                updated_at=now,
            )
            for i, payload in enumerate(PAYLOADS)
        ],
    )
    return store


def ids(index: DocumentIndex, filters: dict[str, Any]) -> list[str]:
    where = compile_filter(filters, resolve)
    return sorted(d.document_id for d in index.query("col_test", where))


@pytest.mark.parametrize(
    "condition, expected",
    [
        ({"field": "title", "operator": "eq", "value": "apple pie"}, ["doc_0"]),
        ({"field": "views", "operator": "gt", "value": 10}, ["doc_1", "doc_2"]),
        ({"field": "views", "operator": "lte", "value": 25.0}, ["doc_0", "doc_1"]),
        ({"field": "score", "operator": "gte", "value": 2}, ["doc_1"]),
        ({"field": "draft", "operator": "eq", "value": False}, ["doc_0", "doc_3"]),
        ({"field": "views", "operator": "ne", "value": 10}, ["doc_1", "doc_2", "doc_3"]),
        ({"field": "views", "operator": "in", "value": [10, 40]}, ["doc_0", "doc_2"]),
        ({"field": "meta.lang", "operator": "nin", "value": ["en"]}, ["doc_1", "doc_2", "doc_3"]),
        ({"field": "title", "operator": "contains", "value": "SPLIT"}, ["doc_1"]),
        ({"field": "title", "operator": "contains", "value": "100% _real_"}, ["doc_2"]),
        ({"field": "title", "operator": "contains", "value": "0%"}, ["doc_2"]),
        ({"field": "title", "operator": "starts_with", "value": "o'brien"}, ["doc_2"]),
        ({"field": "title", "operator": "ends_with", "value": "café"}, ["doc_3"]),
        ({"field": "title", "operator": "eq", "value": "größe 東京 café"}, ["doc_3"]),
        ({"field": "tags", "operator": "contains", "value": "sweet"}, ["doc_0"]),
        ({"field": "title", "operator": "regex", "value": "^(apple|banana)"}, ["doc_0", "doc_1"]),
        ({"field": "score", "operator": "is_null", "value": True}, ["doc_2", "doc_3"]),
        ({"field": "score", "operator": "exists", "value": True}, ["doc_0", "doc_1", "doc_2"]),
        ({"field": "draft", "operator": "exists", "value": False}, ["doc_2"]),
        ({"field": "meta.a-b", "operator": "eq", "value": "dash"}, ["doc_0"]),
        ({"field": "title", "operator": "text", "value": "pie"}, ["doc_0"]),
        ({"field": "root_object_id", "operator": "eq", "value": "obj_1"}, ["doc_1", "doc_3"]),
        ({"field": "document_id", "operator": "starts_with", "value": "doc_"}, ["doc_0", "doc_1", "doc_2", "doc_3"]),
    ],
)
def test_each_operator(index: DocumentIndex, condition: dict[str, Any], expected: list[str]) -> None:
    assert ids(index, {"AND": [condition]}) == expected


def test_logic_shorthand_and_case_sensitivity(index: DocumentIndex) -> None:
    either = {
        "OR": [
            {"field": "views", "operator": "eq", "value": 10},
            {"NOT": [{"field": "draft", "operator": "exists", "value": True}]},
        ]
    }
    assert ids(index, either) == ["doc_0", "doc_2"]
    assert ids(index, {"meta.lang": "fr"}) == ["doc_1"]
    assert (
        ids(index, {"AND": [{"field": "title", "operator": "eq", "value": "apple pie"}], "case_sensitive": True}) == []
    )
    # A string is not a number: "many" never matches a numeric comparison, and nothing breaks.
    assert ids(index, {"field": "views", "operator": "lt", "value": 1000}) == ["doc_0", "doc_1", "doc_2"]


def test_quotes_and_injection_attempts_are_values(index: DocumentIndex) -> None:
    assert ids(index, {"field": "title", "operator": "eq", "value": "x' OR '1'='1"}) == []
    assert ids(index, {"field": "title", "operator": "eq", "value": "O'Brien's 100% _real_ notes"}) == ["doc_2"]


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"field": "title", "operator": "like", "value": "x"}, "Unknown filter operator 'like'"),
        ({"field": "views", "operator": "in", "value": 3}, "non-empty list"),
        ({"field": "title", "operator": "eq", "value": {"type": "dynamic", "field": "x"}}, "Dynamic"),
        ({"field": 'bad"path', "operator": "eq", "value": 1}, "Invalid field path"),
    ],
)
def test_bad_filters_are_refused_before_running(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        compile_filter(filters, resolve)
    assert message in caught.value.message


def test_a_broken_regex_is_a_400(index: DocumentIndex) -> None:
    with pytest.raises(BadRequestError) as caught:
        ids(index, {"field": "title", "operator": "regex", "value": "(["})
    assert "could not be applied" in caught.value.message


def test_upsert_is_idempotent_and_keeps_created_at(index: DocumentIndex) -> None:
    [before] = index.get_many("col_test", ["doc_0"])
    changed = StoredDocument(
        "doc_0", "col_test", {"title": "Apple tart"}, {}, created_at=timestamp(), updated_at=timestamp()
    )
    index.upsert("col_test", [changed, changed])
    assert index.count("col_test") == 4
    [after] = index.get_many("col_test", ["doc_0"])
    assert after.payload == {"title": "Apple tart"} and after.created_at == before.created_at


def test_replace_sources_removes_what_a_source_no_longer_yields(tmp_path: Path) -> None:
    store = DocumentIndex(str(tmp_path / "ix"))
    store.create_table("col_x", {})
    lineage = {"lineage": {"source_object_id": "obj_a", "root_object_id": "obj_a"}}
    first = [
        StoredDocument(f"doc_{i}", "col_x", {"i": i}, lineage, created_at=timestamp(), updated_at=timestamp())
        for i in range(3)
    ]
    assert store.replace_sources("col_x", first, "source_object_id", ["obj_a"]) == 0
    assert store.replace_sources("col_x", first[:1], "source_object_id", ["obj_a"]) == 2
    assert [d.document_id for d in store.query("col_x", None)] == ["doc_0"]


def test_concurrent_writers_never_duplicate(tmp_path: Path) -> None:
    store = DocumentIndex(str(tmp_path / "ix"))
    store.create_table("col_c", {})

    def write(worker: int) -> None:
        for round_ in range(5):
            docs = [
                StoredDocument(
                    f"doc_{n}",
                    "col_c",
                    {"worker": worker, "round": round_},
                    {},
                    created_at=timestamp(),
                    updated_at=timestamp(),
                )
                for n in range(20)
            ]
            store.upsert("col_c", docs)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count("col_c") == 20


def test_vector_index_is_built_at_the_threshold(tmp_path: Path) -> None:
    texts = [
        f"Note {i}: the {['river', 'mountain', 'city', 'forest'][i % 4]} in {['spring', 'winter'][i % 2]}."
        for i in range(300)
    ]
    vectors = embed_texts(texts, key="wordllama")
    store = DocumentIndex(str(tmp_path / "ix"), vector_index_min_rows=300)
    store.create_table("col_v", {"emb": 256})
    docs = [
        StoredDocument(f"doc_{i}", "col_v", {"text": t}, {}, {"emb": vectors[i].tolist()}, timestamp(), timestamp())
        for i, t in enumerate(texts)
    ]
    store.upsert("col_v", docs[:299])
    # Unbounded reads really are unbounded (LanceDB's own default is 10 rows).
    assert len(store.query("col_v", None)) == 299
    assert store.select("col_v", None, {"document_id": "document_id"}).num_rows == 299
    store.maintain("col_v")
    exact = [d.document_id for d, _ in store.nearest("col_v", "emb", vectors[7].tolist(), 5)]
    assert not any("emb" in i.columns for i in store._table("col_v").list_indices())
    store.upsert("col_v", docs[299:])
    store.maintain("col_v")
    assert any(i.columns == ["emb"] for i in store._table("col_v").list_indices())
    hits = store.nearest("col_v", "emb", vectors[7].tolist(), 5)
    assert hits[0][0].document_id == "doc_7" and hits[0][1] < 1e-3
    assert len(set(exact) & {d.document_id for d, _ in hits}) >= 3
