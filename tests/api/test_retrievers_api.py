"""Retrievers over the API on SQLite and PostgreSQL: CRUD, every stage, pagination, streaming, bad input.

Documents are written by the synchronous collection runner with the real MiniLM model, so a
text query is embedded exactly as the chunks were.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mixpeek.models.stage_defs_feature_search_group_by import StageDefsFeatureSearchGroupBy
from mixpeek.models.stage_defs_logical_operator import StageDefsLogicalOperator
from mixpeek.models.stage_params_attribute_filter import StageParamsAttributeFilter
from mixpeek.models.stage_params_document_enrich import StageParamsDocumentEnrich
from mixpeek.models.stage_params_group_by import StageParamsGroupBy
from mixpeek.models.stage_params_mmr import StageParamsMmr
from mixpeek.models.stage_params_sort_attribute import StageParamsSortAttribute

from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error

PASSAGES = [
    ("Salmon swim upstream to spawn in the rivers where they hatched.", "Fish", 10, "nature"),
    ("A sourdough starter is a culture of wild yeast and bacteria.", "Bread", 40, "food"),
    ("The Apollo 11 mission landed the first humans on the Moon in 1969.", "Moon", 90, "space"),
    ("Whisk eggs and sugar until pale before folding in the flour.", "Cake", 25, "food"),
    ("Glaciers carve deep U-shaped valleys as they slowly move.", "Ice", 60, "nature"),
]
QUERY = {"query": {"type": "text", "required": True}}


@pytest.fixture
def corpus(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    make_bucket(client)
    collection = text_collection(
        client,
        "passages",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="none",
        model="minilm",
        passthrough=("title", "views", "lang"),
    )
    objects = [add_object(client, text, title=title, views=views, lang=lang) for text, title, views, lang in PASSAGES]
    result = run(runtime, collection["collection_id"], objects)
    assert result.failures == [] and result.documents_written == len(PASSAGES)
    feature = client.get(f"/v1/collections/{collection['collection_id']}/features").json()
    uri = next(f["feature_uri"] for f in feature["features"])
    return {"collection": collection, "objects": objects, "feature_uri": uri}


def search_stage(uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": 50}],
                "final_top_k": 10,
                **extra,
            },
        },
    }


def adhoc(
    client: TestClient, stages: list[dict[str, Any]], inputs: dict[str, Any], query: str = "", **body: Any
) -> Any:
    return client.post(
        f"/v1/retrievers/execute{query}",
        json={
            "collection_identifiers": ["passages"],
            "input_schema": QUERY,
            "stages": stages,
            "inputs": inputs,
            **body,
        },
    )


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["title"] for d in response.json()["documents"]]


def test_crud_and_saved_execute(client: TestClient, corpus: dict[str, Any]) -> None:
    created = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "passages_search",
            "collection_identifiers": ["passages"],
            "stages": [search_stage(corpus["feature_uri"])],
            "input_schema": QUERY,
            "tags": ["demo"],
            "requires_subscription": False,
            "metadata": {"seed": 7, "owner": {"team": "search"}},
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    rid = body["retriever_id"]
    assert body["metadata"] == body["retriever"]["metadata"] == {"seed": 7, "owner": {"team": "search"}}
    assert body["retriever"]["retriever_id"] == rid and body["fusion"] is None and body["version"] == 1
    assert body["collection_ids"] == body["collection_identifiers"] == [corpus["collection"]["collection_id"]]
    stage = body["stages"][0]
    assert stage["parameters"] == stage["config"]["parameters"] and stage["config"]["stage_id"] == "feature_search"

    assert client.get(f"/v1/retrievers/{rid}").json()["retriever_name"] == "passages_search"
    assert client.get("/v1/retrievers/passages_search").json()["retriever_id"] == rid
    listed = client.post("/v1/retrievers/list", json={"search": "PASSAGES"}).json()
    assert [r["retriever_id"] for r in listed["results"]] == [rid] and listed["total"] == 1
    assert listed["results"][0]["metadata"] == {"seed": 7, "owner": {"team": "search"}}
    assert client.get("/v1/retrievers").json()["total"] == 1
    assert_error(
        client.post(
            "/v1/retrievers",
            json={
                "retriever_name": "passages_search",
                "collection_identifiers": ["passages"],
                "stages": [search_stage(corpus["feature_uri"])],
            },
        ),
        409,
    )

    patched = client.patch(f"/v1/retrievers/{rid}", json={"description": "moon and bread", "tags": ["x"]}).json()
    assert patched["description"] == "moon and bread" and patched["version"] == 2 and patched["tags"] == ["x"]
    assert patched["metadata"] == {"seed": 7, "owner": {"team": "search"}}  # not sent: kept
    replaced = client.patch(f"/v1/retrievers/{rid}", json={"metadata": {"seed": 8}}).json()
    assert replaced["metadata"] == {"seed": 8} and client.get(f"/v1/retrievers/{rid}").json()["metadata"] == {"seed": 8}
    copy = client.post(f"/v1/retrievers/{rid}/clone", json={"retriever_name": "copy"})
    assert copy.status_code == 200, copy.text
    assert copy.json()["retriever"]["metadata"] == {"seed": 8}
    client.delete(f"/v1/retrievers/{copy.json()['retriever']['retriever_id']}")

    result = client.post(
        f"/v1/retrievers/{rid}/execute",
        json={"inputs": {"query": "astronauts on the lunar surface"}, "limit": 3, "stream": False},
    )
    assert result.status_code == 200, result.text
    out = result.json()
    assert out["execution_id"].startswith("exec_") and out["status"] == "completed" and out["retriever_id"] == rid
    top = out["documents"][0]
    assert top["title"] == "Moon" and 0 < top["score"] <= 1 and len(out["documents"]) == 3
    assert top["_internal"]["lineage"]["root_object_id"] == corpus["objects"][2]
    stats = out["stage_statistics"]["stages"]["search"]
    assert stats["output_count"] == 5 and stats["duration_ms"] >= 0 and out["stage_statistics"]["total_time_ms"] > 0

    assert client.delete(f"/v1/retrievers/{rid}").json()["success"] is True
    assert_error(client.get(f"/v1/retrievers/{rid}"), 404)


def test_full_text_hybrid_and_fusion(client: TestClient, corpus: dict[str, Any]) -> None:
    text = adhoc(
        client,
        [{"stage_name": "fts", "config": {"stage_id": "text_search", "parameters": {"query": "{{input.query}}"}}}],
        {"query": "sourdough yeast"},
    )
    assert titles(text)[0] == "Bread"
    hybrid = adhoc(
        client,
        [
            {
                "stage_name": "hybrid",
                "config": {
                    "stage_id": "hybrid_search",
                    "parameters": {"query": "{{INPUTS.query}}", "feature_uri": corpus["feature_uri"]},
                },
            }
        ],
        {"query": "sourdough yeast"},
    )
    assert titles(hybrid)[0] == "Bread"
    assert set(hybrid.json()["documents"][0]["search_scores"]) == {"vector", "text"}

    # Two searches fused: every method puts the passage both queries like at the top.
    for fusion in ("rrf", "weighted", "max", "dbsf"):
        two = adhoc(
            client,
            [
                {
                    "stage_name": "s",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {
                            "fusion": fusion,
                            "searches": [
                                {"feature_uri": corpus["feature_uri"], "query": "{{INPUT.query}}"},
                                {"feature_uri": corpus["feature_uri"], "query": "rocket to the moon", "weight": 0.5},
                            ],
                        },
                    },
                }
            ],
            {"query": "space exploration"},
        )
        assert titles(two)[0] == "Moon", fusion


def test_shaping_stages(client: TestClient, corpus: dict[str, Any], runtime: Runtime) -> None:
    uri = corpus["feature_uri"]
    food_only = adhoc(
        client,
        [
            search_stage(uri),
            {
                "stage_name": "f",
                "config": {
                    "stage_id": "attribute_filter",
                    "parameters": {"filters": {"field": "lang", "operator": "eq", "value": "food"}},
                },
            },
        ],
        {"query": "baking"},
    )
    assert sorted(titles(food_only)) == ["Bread", "Cake"]
    by_views = adhoc(
        client,
        [
            search_stage(uri),
            {
                "stage_name": "s",
                "config": {"stage_id": "sort_attribute", "parameters": {"field": "views", "direction": "asc"}},
            },
            {"stage_name": "l", "config": {"stage_id": "limit", "parameters": {"limit": 2}}},
        ],
        {"query": "anything"},
    )
    assert titles(by_views) == ["Fish", "Cake"]
    dedup = adhoc(
        client,
        [
            search_stage(uri),
            {"stage_name": "d", "config": {"stage_id": "deduplicate", "parameters": {"field": "lang"}}},
        ],
        {"query": "rivers and ice"},
    )
    assert len(titles(dedup)) == 3 and titles(dedup)[0] in {"Fish", "Ice"}
    grouped = adhoc(
        client,
        [
            search_stage(uri),
            {
                "stage_name": "g",
                "config": {"stage_id": "group_by", "parameters": {"field": "root_object_id", "max_per_group": 1}},
            },
        ],
        {"query": "x"},
    )
    assert len(titles(grouped)) == 5 and grouped.json()["stage_statistics"]["stages"]["g"]["metadata"]["groups"] == 5
    diverse = adhoc(
        client,
        [
            search_stage(uri),
            {"stage_name": "m", "config": {"stage_id": "mmr", "parameters": {"lambda": 0.3, "top_k": 3}}},
        ],
        {"query": "cooking with flour"},
    )
    assert len(titles(diverse)) == 3 and titles(diverse)[0] in {"Cake", "Bread"}
    # A filter inside a search, and a filter as the first stage.
    nature = adhoc(client, [search_stage(uri)], {"query": "fish"})
    assert titles(nature)[0] == "Fish"
    first = adhoc(
        client,
        [
            {
                "stage_name": "f",
                "config": {
                    "stage_id": "attribute_filter",
                    "parameters": {"filters": {"field": "views", "operator": "gte", "value": 60}},
                },
            }
        ],
        {"query": "unused"},
    )
    assert sorted(titles(first)) == ["Ice", "Moon"]


def _sdk_stage(name: str, stage_id: str, parameters: Any) -> dict[str, Any]:
    """A stage whose parameters come from the SDK's typed model, serialised as the SDK sends them."""
    return {"stage_name": name, "config": {"stage_id": stage_id, "parameters": json.loads(parameters.to_json())}}


def test_shaping_stages_take_the_sdks_typed_parameters(client: TestClient, corpus: dict[str, Any]) -> None:
    uri = corpus["feature_uri"]
    simple = StageParamsAttributeFilter(field="lang", operator="eq", value="food")
    assert sorted(
        titles(adhoc(client, [search_stage(uri), _sdk_stage("f", "attribute_filter", simple)], {"query": "x"}))
    ) == [
        "Bread",
        "Cake",
    ]
    either = StageParamsAttributeFilter(
        conditions=StageDefsLogicalOperator.from_dict(
            {
                "OR": [
                    {"field": "views", "operator": "gte", "value": 60},
                    {"field": "title", "operator": "eq", "value": "Fish"},
                ]
            }
        )
    )  # the SDK also sends its placeholder field 'metadata.status': conditions win
    first = adhoc(client, [_sdk_stage("f", "attribute_filter", either)], {"query": "unused"})
    assert sorted(titles(first)) == ["Fish", "Ice", "Moon"]

    ranked = titles(adhoc(client, [search_stage(uri)], {"query": "baking bread"}))
    one_each = StageParamsGroupBy(group_by_field="lang", output_mode="first")
    firsts = titles(
        adhoc(client, [search_stage(uri), _sdk_stage("g", "group_by", one_each)], {"query": "baking bread"})
    )
    lang = {title: language for _, title, _, language in PASSAGES}
    best_of_each = [t for i, t in enumerate(ranked) if lang[t] not in {lang[u] for u in ranked[:i]}]
    assert firsts == best_of_each and len(firsts) == 3
    pairs = StageParamsGroupBy(group_by_field="lang", max_per_group=2)  # output_mode 'all': grouped
    grouped = titles(adhoc(client, [search_stage(uri), _sdk_stage("g", "group_by", pairs)], {"query": "baking bread"}))
    assert grouped == [t for first in best_of_each for t in ranked if lang[t] == lang[first]]
    flat = StageParamsGroupBy(group_by_field="lang", max_per_group=2, output_mode="flatten")
    flattened = titles(adhoc(client, [search_stage(uri), _sdk_stage("g", "group_by", flat)], {"query": "baking bread"}))
    assert flattened == ranked  # the same hits (no language has more than two), in their ranking
    everything = titles(
        adhoc(client, [search_stage(uri), _sdk_stage("g", "group_by", StageParamsGroupBy())], {"query": "baking bread"})
    )
    assert sorted(everything) == sorted(ranked)  # by source object, 10 each: every passage is its own group

    # A search that groups its own candidates: the best two languages, one passage each.
    by_language = StageDefsFeatureSearchGroupBy(var_field="lang", max_per_group=1, limit=2).to_dict()
    two = titles(adhoc(client, [search_stage(uri, group_by=by_language)], {"query": "baking bread"}))
    assert two == best_of_each[:2]
    ungrouped = adhoc(client, [search_stage(uri, group_by={"field": "lang", "output_mode": "nested"})], {"query": "x"})
    assert ungrouped.status_code == 422, ungrouped.text

    # collection_identifiers: the stage searches those of the retriever's collections it names.
    by_name = titles(adhoc(client, [search_stage(uri, collection_identifiers=["passages"])], {"query": "baking bread"}))
    assert by_name == ranked
    elsewhere = adhoc(client, [search_stage(uri, collection_identifiers=["col_elsewhere"])], {"query": "x"})
    assert assert_error(elsewhere, 400)["error"]["details"]["unknown"] == ["col_elsewhere"]

    # nulls_last: hits without the field after the others (the default), or first when ascending.
    food = {"AND": [{"field": "lang", "operator": "eq", "value": "food"}]}
    joined = _enrich(
        {
            "target_collection_id": "passages",
            "source_field": "document_id",
            "target_field": "document_id",
            "fields_to_merge": ["views"],
            "output_field": "joined",
            "when": food,
        }
    )
    others = [t for t in titles(adhoc(client, [search_stage(uri)], {"query": "x"})) if t not in {"Cake", "Bread"}]
    for nulls_last, expected in ((True, ["Cake", "Bread", *others]), (False, [*others, "Cake", "Bread"])):
        order = StageParamsSortAttribute(var_field="joined.views", direction="asc", nulls_last=nulls_last)
        stages = [search_stage(uri), joined, _sdk_stage("s", "sort_attribute", order)]
        assert titles(adhoc(client, stages, {"query": "x"})) == expected

    diverse = StageParamsMmr(var_lambda=0.3, top_k=3, diversity_feature_uri=uri)
    assert len(titles(adhoc(client, [search_stage(uri), _sdk_stage("m", "mmr", diverse)], {"query": "flour"}))) == 3

    for stage_id, parameters, words in (
        ("attribute_filter", {"natural_language": "only food"}, "language model"),
        (
            "attribute_filter",
            {"field": "lang", "operator": "eq", "value": "food", "case_insensitive": True},
            "case_insensitive",
        ),
        ("attribute_filter", {"batch_size": 10}, "give the filter"),
        ("mmr", {"diversity_fields": ["lang"], "diversity_feature_uri": "mixpeek://x@v1/y"}, "one of"),
        ("mmr", {"diversity_fields": ["lang"], "diversity_field_weights": {"title": 1}}, "title"),
        ("mmr", {"similarity_metric": "euclidean"}, "cosine"),
        ("group_by", {"output_mode": "nested"}, "output_mode"),
    ):
        stage = {"stage_name": "s", "config": {"stage_id": stage_id, "parameters": parameters}}
        refused = adhoc(client, [search_stage(uri), stage], {"query": "x"})
        assert refused.status_code == 422, (stage_id, refused.text)
        assert words in refused.json()["error"]["message"], refused.text


def test_an_executions_own_filters_narrow_every_search(client: TestClient, corpus: dict[str, Any]) -> None:
    uri = corpus["feature_uri"]
    nature = {"AND": [{"field": "lang", "operator": "eq", "value": "nature"}]}
    # ANDed into the search's own filters: the search ranks only what both allow.
    searched = adhoc(client, [search_stage(uri)], {"query": "baking bread"}, filters=nature)
    assert sorted(titles(searched)) == ["Fish", "Ice"]
    spec = search_stage(uri)
    spec["config"]["parameters"]["searches"][0]["filters"] = {"field": "views", "operator": "gte", "value": 50}
    both = adhoc(client, [spec], {"query": "baking bread"}, filters=nature)
    assert titles(both) == ["Ice"]
    # A pipeline without a search gets them as a last filter.
    listed = {
        "stage_name": "all",
        "config": {
            "stage_id": "attribute_filter",
            "parameters": {"filters": {"field": "views", "operator": "gte", "value": 0}},
        },
    }
    assert sorted(titles(adhoc(client, [listed], {"query": "x"}, filters=nature))) == ["Fish", "Ice"]
    # A saved retriever: its stored stages stay as they were.
    created = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "filtered",
            "collection_identifiers": ["passages"],
            "input_schema": QUERY,
            "stages": [search_stage(uri)],
        },
    )
    assert created.status_code == 200, created.text
    retriever_id = created.json()["retriever_id"]
    run = client.post(f"/v1/retrievers/{retriever_id}/execute", json={"inputs": {"query": "bread"}, "filters": nature})
    assert sorted(titles(run)) == ["Fish", "Ice"]
    unfiltered = client.post(f"/v1/retrievers/{retriever_id}/execute", json={"inputs": {"query": "bread"}})
    assert len(titles(unfiltered)) == 5
    bad = client.post(
        f"/v1/retrievers/{retriever_id}/execute",
        json={"inputs": {"query": "bread"}, "filters": {"field": "lang", "operator": "sounds_like", "value": "x"}},
    )
    assert_error(bad, 400)


def test_patch_edits_the_pipeline_and_grows_the_input_schema(client: TestClient, corpus: dict[str, Any]) -> None:
    uri = corpus["feature_uri"]
    body = {"retriever_name": "editable", "collection_identifiers": ["passages"], "input_schema": QUERY}
    rid = client.post("/v1/retrievers", json={**body, "stages": [search_stage(uri)]}).json()["retriever_id"]
    two = search_stage(uri)
    two["config"]["parameters"]["final_top_k"] = 2
    patched = client.patch(f"/v1/retrievers/{rid}", json={"stages": [two]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["stages"][0]["config"]["parameters"]["final_top_k"] == 2 and patched.json()["version"] == 2
    assert len(titles(client.post(f"/v1/retrievers/{rid}/execute", json={"inputs": {"query": "bread"}}))) == 2

    grown = {**QUERY, "lang": {"type": "string", "description": "optional, new"}}
    assert (
        client.patch(f"/v1/retrievers/{rid}", json={"input_schema": grown}).json()["input_schema"]["lang"]["type"]
        == "string"
    )
    before = client.get(f"/v1/retrievers/{rid}").json()
    for refused in (
        {"stages": [search_stage("mixpeek://nowhere@v1/nothing")]},
        {"input_schema": {"lang": {"type": "string"}}},  # drops 'query'
        {"input_schema": {**grown, "query": {"type": "number", "required": True}}},
        {"input_schema": {**grown, "page": {"type": "integer", "required": True}}},
        {
            "input_schema": grown,
            "stages": [two],
            "description": "half",
            "collection_identifiers": ["no_such_collection"],
        },
    ):
        answer = client.patch(f"/v1/retrievers/{rid}", json=refused)
        assert answer.status_code in (400, 404), (refused, answer.text)
        assert client.get(f"/v1/retrievers/{rid}").json() == before  # nothing changed, not even the version


def _enrich(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"stage_name": "join", "config": {"stage_id": "document_enrich", "parameters": parameters}}


def test_document_enrich_with_when_and_the_sdks_typed_parameters(client: TestClient, corpus: dict[str, Any]) -> None:
    # Built with the SDK's own model, as a user would: its to_dict() sends retriever_id and any
    # unset output_field as the text 'null', which means "not given".
    food = StageDefsLogicalOperator.from_dict({"AND": [{"field": "lang", "operator": "eq", "value": "food"}]})
    joined = StageParamsDocumentEnrich(
        target_collection_id=corpus["collection"]["collection_id"],
        source_field="document_id",
        target_field="document_id",
        fields_to_merge=["views"],
        output_field="joined",
        when=food,
    ).to_dict()
    assert joined["retriever_id"] == "null"
    response = adhoc(client, [search_stage(corpus["feature_uri"]), _enrich(joined)], {"query": "anything"})
    by_title = {d["title"]: d for d in response.json()["documents"]}
    assert set(by_title) == {"Fish", "Bread", "Moon", "Cake", "Ice"}, response.text
    assert {t: d.get("joined") for t, d in by_title.items()} == {
        "Fish": None,
        "Bread": {"views": 40},
        "Moon": None,
        "Cake": {"views": 25},
        "Ice": None,
    }
    notes = response.json()["stage_statistics"]["stages"]["join"]["metadata"]
    assert (notes["enriched"], notes["unmatched"], notes["skipped_by_when"]) == (2, 0, 3)

    # Hits the condition leaves out pass through even where allow_missing drops the unmatched.
    never = StageParamsDocumentEnrich(
        target_collection_id="passages", source_field="title", target_field="lang", allow_missing=False, when=food
    ).to_dict()
    assert never["output_field"] == "null"
    kept = adhoc(client, [search_stage(corpus["feature_uri"]), _enrich(never)], {"query": "anything"})
    assert sorted(titles(kept)) == ["Fish", "Ice", "Moon"]
    assert all("null" not in d for d in kept.json()["documents"])

    bad_when = {**joined, "when": {"AND": [{"field": "lang", "operator": "sounds_like", "value": "x"}]}}
    refused = adhoc(client, [search_stage(corpus["feature_uri"]), _enrich(bad_when)], {"query": "anything"})
    assert refused.status_code in (400, 422), refused.text
    by_retriever = adhoc(
        client, [search_stage(corpus["feature_uri"]), _enrich({**joined, "retriever_id": "ret_x"})], {"query": "x"}
    )
    assert "'retriever_id' is not supported" in assert_error(by_retriever, 400)["error"]["message"]


def test_pages_vectors_and_presigned(client: TestClient, corpus: dict[str, Any]) -> None:
    stages = [search_stage(corpus["feature_uri"])]
    everything = titles(adhoc(client, stages, {"query": "nature"}, pagination={"method": "offset", "page_size": 5}))
    page1 = adhoc(client, stages, {"query": "nature"}, pagination={"method": "offset", "page_size": 2})
    page2 = adhoc(
        client, stages, {"query": "nature"}, pagination={"method": "offset", "page_size": 2, "page_number": 2}
    )
    assert titles(page1) + titles(page2) == everything[:4]
    cursor1 = adhoc(client, stages, {"query": "nature"}, pagination={"method": "cursor", "limit": 3})
    following = cursor1.json()["pagination"]["next_cursor"]
    cursor2 = adhoc(
        client, stages, {"query": "nature"}, pagination={"method": "cursor", "limit": 3, "cursor": following}
    )
    assert titles(cursor1) + titles(cursor2) == everything and cursor2.json()["pagination"]["next_cursor"] is None
    with_vectors = adhoc(client, stages, {"query": "nature"}, "?return_vectors=true&return_presigned_urls=true")
    doc = with_vectors.json()["documents"][0]
    vector_name = next(k for k in doc if k.startswith("text_extractor_v1_"))
    assert len(doc[vector_name]) == 384
    assert all("presigned_url" in b for b in doc["document_blobs"] if b.get("url"))


def test_stream_events(client: TestClient, corpus: dict[str, Any]) -> None:
    stages = [
        search_stage(corpus["feature_uri"]),
        {"stage_name": "l", "config": {"stage_id": "limit", "parameters": {"limit": 2}}},
    ]
    with client.stream(
        "POST",
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["passages"],
            "input_schema": QUERY,
            "stages": stages,
            "inputs": {"query": "bread"},
            "stream": True,
        },
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["event"] for e in events] == [
        "stage_start",
        "stage_complete",
        "stage_start",
        "stage_complete",
        "execution_complete",
    ]
    assert len(events[-1]["result"]["documents"]) == 2
    bad_vector = [
        {
            "stage_name": "s",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "searches": [
                        {"feature_uri": corpus["feature_uri"], "query": {"input_mode": "vector", "value": [0.1, 0.2]}}
                    ]
                },
            },
        }
    ]
    with client.stream(
        "POST",
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["passages"],
            "input_schema": {},
            "stages": bad_vector,
            "inputs": {},
            "stream": True,
        },
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["event"] for e in events] == ["stage_start", "stage_error", "execution_error"]
    assert events[-1]["status"] == 400 and "dimensions" in events[-1]["error"]["message"]


def test_bad_input(client: TestClient, corpus: dict[str, Any]) -> None:
    uri = corpus["feature_uri"]
    missing = adhoc(client, [search_stage(uri)], {})
    assert "query" in assert_error(missing, 422, "ValidationError")["error"]["message"]
    assert_error(adhoc(client, [search_stage(uri)], {"query": 5}), 422)
    unknown = adhoc(client, [search_stage("mixpeek://text_extractor@v1/nope")], {"query": "x"})
    assert "Unknown feature URI" in assert_error(unknown, 400)["error"]["message"]
    wrong_dims = adhoc(
        client,
        [
            {
                "stage_name": "s",
                "config": {
                    "stage_id": "feature_search",
                    "parameters": {
                        "searches": [{"feature_uri": uri, "query": {"input_mode": "vector", "value": [0.5] * 10}}]
                    },
                },
            }
        ],
        {"query": "x"},
    )
    assert "384" in assert_error(wrong_dims, 400)["error"]["message"]
    bad_filter = adhoc(
        client,
        [
            {
                "stage_name": "s",
                "config": {
                    "stage_id": "feature_search",
                    "parameters": {
                        "searches": [
                            {
                                "feature_uri": uri,
                                "query": "x",
                                "filters": {"field": "lang", "operator": "fuzzy", "value": 1},
                            }
                        ]
                    },
                },
            }
        ],
        {"query": "x"},
    )
    assert "fuzzy" in assert_error(bad_filter, 400)["error"]["message"]
    assert_error(adhoc(client, [{"stage_name": "s", "config": {"stage_id": "teleport"}}], {"query": "x"}), 400)
    assert_error(
        adhoc(
            client, [{"stage_name": "s", "config": {"stage_id": "limit", "parameters": {"limit": -1}}}], {"query": "x"}
        ),
        422,
    )
    two_searches = [
        {
            "stage_name": "s",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "fusion": "magic",
                    "searches": [{"feature_uri": uri, "query": "a"}, {"feature_uri": uri, "query": "b"}],
                },
            },
        }
    ]
    assert "fusion" in assert_error(adhoc(client, two_searches, {"query": "x"}), 400)["error"]["message"]
    bad_schema = client.post(
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["passages"],
            "input_schema": {"q": {"type": "hologram"}},
            "stages": [search_stage(uri)],
            "inputs": {},
        },
    )
    assert_error(bad_schema, 422)
    assert_error(
        adhoc(client, [search_stage(uri)], {"query": "x"}, pagination={"method": "offset", "page_size": 0}), 400
    )
    no_collection = client.post(
        "/v1/retrievers",
        json={"retriever_name": "r", "collection_identifiers": ["ghost"], "stages": [search_stage(uri)]},
    )
    assert_error(no_collection, 404)
    unknown_saved = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "r",
            "collection_identifiers": ["passages"],
            "stages": [search_stage("mixpeek://x@v1/y")],
        },
    )
    assert_error(unknown_saved, 400)
    assert client.post("/v1/retrievers/list", json={}).json()["total"] == 0  # nothing left behind


def test_mmr_diversifies_by_fields_or_weighted_features_and_records_its_score(
    client: TestClient, corpus: dict[str, Any]
) -> None:
    uri = corpus["feature_uri"]

    def mmr(parameters: dict[str, Any]) -> list[dict[str, Any]]:
        stage = {"stage_name": "m", "config": {"stage_id": "mmr", "parameters": parameters}}
        response = adhoc(client, [search_stage(uri), stage], {"query": "baking bread and cake"})
        assert response.status_code == 200, response.text
        return list(response.json()["documents"])

    # By fields: strong diversity puts one of each kind first, though two food passages rank highest.
    picked = mmr({"lambda": 0.3, "top_k": 3, "diversity_fields": ["lang"]})
    assert {d["lang"] for d in picked} == {"food", "nature", "space"}
    assert picked[0]["lang"] == "food" and picked[0]["scores"]["mmr"] == pytest.approx(0.3)
    relevant = mmr({"lambda": 1.0, "top_k": 3, "diversity_fields": ["lang"]})
    assert [d["lang"] for d in relevant[:2]] == ["food", "food"]  # pure relevance: no diversity at all

    # Relevance from another field: pure relevance then ranks by views.
    by_views = mmr({"lambda": 1.0, "score_field": "views", "mmr_score_field": "debug.mmr"})
    assert [d["title"] for d in by_views] == ["Moon", "Ice", "Bread", "Cake", "Fish"]
    assert [d["debug"]["mmr"] for d in by_views] == pytest.approx([1.0, 50 / 80, 30 / 80, 15 / 80, 0.0])

    # Weighted features (one here): the same as naming the feature.
    weighted = mmr({"lambda": 0.5, "top_k": 4, "diversity_features": [{"feature_uri": uri, "weight": 0.4}]})
    named = mmr({"lambda": 0.5, "top_k": 4, "diversity_feature_uri": uri})
    assert [d["document_id"] for d in weighted] == [d["document_id"] for d in named] and len(named) == 4


def test_feature_search_facets_count_every_matching_document(client: TestClient, corpus: dict[str, Any]) -> None:
    uri = corpus["feature_uri"]
    facets = [{"key": "lang"}, {"key": "views", "limit": 2}]
    stage = search_stage(uri, facets=facets, final_top_k=1)
    response = adhoc(client, [stage], {"query": "bread"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["documents"]) == 1  # the page is one document; the facets count all five
    by_key = {f["key"]: f for f in body["facets"]}
    assert by_key["lang"]["values"] == [
        {"value": "food", "count": 2},
        {"value": "nature", "count": 2},
        {"value": "space", "count": 1},
    ]
    assert by_key["views"]["total_distinct"] == 5 and len(by_key["views"]["values"]) == 2
    assert body["stage_statistics"]["stages"]["search"]["metadata"]["facets"] == body["facets"]

    # The search's filters narrow the facets as they narrow the search.
    nature = {"field": "lang", "operator": "ne", "value": "space"}
    filtered = search_stage(uri, facets=[{"key": "lang"}])
    filtered["config"]["parameters"]["searches"][0]["filters"] = nature
    narrowed = adhoc(client, [filtered], {"query": "bread"}).json()["facets"]
    assert narrowed == [
        {
            "key": "lang",
            "values": [{"value": "food", "count": 2}, {"value": "nature", "count": 2}],
            "total_distinct": 2,
        }
    ]
    assert adhoc(client, [search_stage(uri)], {"query": "bread"}).json()["facets"] is None
    bad = adhoc(client, [search_stage(uri, facets=[{"key": "lang", "limit": 0}])], {"query": "bread"})
    assert bad.status_code == 422, bad.text


def test_list_takes_a_single_sort(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    collection = text_collection(client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, model="minilm")
    features = client.get(f"/v1/collections/{collection['collection_id']}/features").json()["features"]
    for name, description in [("alpha", "b"), ("bravo", "a"), ("charlie", "b")]:
        created = client.post(
            "/v1/retrievers",
            json={
                "retriever_name": name,
                "description": description,
                "collection_identifiers": ["passages"],
                "stages": [search_stage(features[0]["feature_uri"])],
                "input_schema": QUERY,
            },
        )
        assert created.status_code == 200, created.text

    def names(body: dict[str, Any]) -> list[str]:
        response = client.post("/v1/retrievers/list", json=body)
        assert response.status_code == 200, response.text
        return [r["retriever_name"] for r in response.json()["results"]]

    # created last first without a sort
    assert names({"sort": {"field": "retriever_name", "direction": "asc"}}) == ["alpha", "bravo", "charlie"]
    # with `sorts` too, the single sort follows them
    by_description = [{"field": "description", "direction": "desc"}]
    both = {"sorts": by_description, "sort": {"field": "retriever_name", "direction": "asc"}}
    assert names(both) == ["alpha", "charlie", "bravo"]
    bad = assert_error(client.post("/v1/retrievers/list", json={"sort": {"field": "secret"}}), 400)
    assert "secret" in bad["error"]["message"]
    assert_error(client.post("/v1/retrievers/list", json={"sort": {"field": "retriever_name", "direction": "up"}}), 422)
