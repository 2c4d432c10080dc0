"""The merge of taxonomy matches into a document: replace, append, rename, and re-application."""

from __future__ import annotations

from typing import Any

from strataflow.index.records import StoredDocument
from strataflow.schemas.taxonomies import EnrichmentField, InputMapping
from strataflow.services.taxonomies import enrichment
from strataflow.services.taxonomies.join import JoinPlan, Match, Subject, mapped_inputs, path_match, path_nodes
from strataflow.services.taxonomies.scoping import predicate

FIELDS = [
    EnrichmentField(field_path="name", target_field="category"),
    EnrichmentField(field_path="tags", merge_mode="append"),
]


def plan(version: int = 1, top_k: int = 2) -> JoinPlan:
    return JoinPlan("tax_a", "topics", version, "flat", [], top_k=top_k)


def match(name: str, tags: list[str], score: float, fields: list[EnrichmentField] | None = FIELDS) -> Match:
    return Match(f"node_{name}", name, score, {"name": name, "tags": tags, "extra": 1}, fields, [name], 0)


def test_replace_takes_the_best_match_and_append_collects_every_match() -> None:
    payload: dict[str, Any] = {"tags": ["own"], "text": "t"}
    internal: dict[str, Any] = {}
    written = enrichment.apply(payload, internal, plan(), [match("fish", ["sea"], 0.9), match("bird", ["air"], 0.5)])
    assert payload == {"tags": ["own", "sea", "air"], "text": "t", "category": "fish"}
    assert written == ["category", "tags"]
    assert internal["_taxonomy_tax_a_label"] == "fish" and internal["_taxonomy_tax_a_score"] == 0.9
    assert [a["label"] for a in internal["_taxonomy_tax_a_assignments"]] == ["fish", "bird"]


def test_reapplying_replaces_old_values_instead_of_mixing() -> None:
    payload: dict[str, Any] = {"tags": ["own"]}
    internal: dict[str, Any] = {}
    enrichment.apply(payload, internal, plan(), [match("fish", ["sea"], 0.9)])
    enrichment.apply(payload, internal, plan(), [match("fish", ["sea"], 0.9)])  # a re-run: nothing doubles
    assert payload == {"tags": ["own", "sea"], "category": "fish"}
    enrichment.apply(payload, internal, plan(version=2, top_k=1), [match("bird", ["air"], 0.7)])
    assert payload == {"tags": ["own", "air"], "category": "bird"}
    assert "_taxonomy_tax_a_assignments" not in internal and internal["taxonomies"]["tax_a"]["version"] == 2
    enrichment.apply(payload, internal, plan(version=3), [])  # no match any more: the old values go
    assert payload == {"tags": ["own"]} and "_taxonomy_tax_a_id" not in internal


def test_a_value_the_user_changed_since_is_kept() -> None:
    payload: dict[str, Any] = {}
    internal: dict[str, Any] = {}
    enrichment.apply(payload, internal, plan(), [match("fish", [], 0.9)])
    payload["category"] = "edited by hand"
    enrichment.apply(payload, internal, plan(), [])
    assert payload["category"] == "edited by hand"


def test_without_a_field_list_the_whole_node_payload_is_copied() -> None:
    payload: dict[str, Any] = {}
    enrichment.apply(payload, {}, plan(top_k=1), [match("fish", ["sea"], 0.9, fields=None)])
    assert payload == {"name": "fish", "tags": ["sea"], "extra": 1}


def test_inputs_from_payload_literal_and_vector() -> None:
    subject = Subject("d", {"meta": {"title": "x"}, "empty": ""}, {"vec": [0.1, 0.2]})
    mappings = [
        InputMapping(input_key="q", path="meta.title"),
        InputMapping(input_key="k", source_type="literal", override=3),
        InputMapping(input_key="v", source_type="vector", path="vec"),
    ]
    assert mapped_inputs(mappings, subject) == {"q": "x", "k": 3, "v": [0.1, 0.2]}
    assert mapped_inputs([InputMapping(input_key="q", path="empty")], subject) is None
    assert mapped_inputs([InputMapping(input_key="q", path="absent")], subject) is None


def test_path_hierarchy_nodes_are_stable_with_parents_and_levels() -> None:
    found = path_match(Subject(None, {"folder": "a/b/c"}), "folder", "/")
    assert found is not None and found.path == ["a", "b", "c"] and found.level == 2
    nodes = path_nodes(["a", "b", "c"])
    assert [n["level"] for n in nodes] == [0, 1, 2] and nodes[0]["parent_id"] is None
    assert nodes[2]["parent_id"] == nodes[1]["node_id"] == path_nodes(["a", "b"])[1]["node_id"]
    assert path_match(Subject(None, {"folder": ""}), "folder", "/") is None


def hierarchy(style: str, version: int = 1) -> JoinPlan:
    return JoinPlan("tax_h", "iab content", version, "hierarchical", [], style=style, field_prefix="iab_content")


def tiers() -> list[Match]:
    """The deepest match (level 1) first, then the ancestor it inherits from (level 0)."""
    child = Match("n_sport", "sport", 0.8, {"title": "sport", "code": "S"}, [EnrichmentField(field_path="code")])
    parent = Match("n_news", "news", 0.6, {"title": "news", "code": "N"}, [EnrichmentField(field_path="code")])
    child.path, child.level = ["news", "sport"], 1
    parent.path, parent.level = ["news"], 0
    return [child, parent]


def test_best_match_writes_the_deepest_match_alone() -> None:
    payload: dict[str, Any] = {}
    enrichment.apply(payload, {}, hierarchy("best_match"), tiers())
    assert payload == {
        "code": "S",
        "iab_content_id": "n_sport",
        "iab_content_name": "sport",
        "iab_content_path": ["news", "sport"],
        "iab_content_score": 0.8,
    }


def test_full_chain_writes_tier_prefixed_fields_per_level() -> None:
    payload: dict[str, Any] = {}
    enrichment.apply(payload, {}, hierarchy("full_chain"), tiers())
    assert payload == {
        "iab_content_tier1_id": "n_news",
        "iab_content_tier1_name": "news",
        "iab_content_tier1_score": 0.6,
        "iab_content_tier1_code": "N",
        "iab_content_tier2_id": "n_sport",
        "iab_content_tier2_name": "sport",
        "iab_content_tier2_score": 0.8,
        "iab_content_tier2_code": "S",
    }


def test_combined_writes_both_and_a_style_change_replaces_the_old_fields() -> None:
    payload: dict[str, Any] = {"own": 1}
    internal: dict[str, Any] = {}
    enrichment.apply(payload, internal, hierarchy("combined"), tiers())
    assert payload["code"] == "S" and payload["iab_content_tier1_code"] == "N"  # the deepest match's value wins
    assert payload["iab_content_path"] == ["news", "sport"] and payload["iab_content_tier2_id"] == "n_sport"
    enrichment.apply(payload, internal, hierarchy("best_match", version=2), tiers())
    assert not [k for k in payload if "_tier" in k]  # never a mix of the two styles
    enrichment.apply(payload, internal, hierarchy("full_chain", version=3), [])
    assert payload == {"own": 1}


def test_a_path_hierarchy_names_every_prefix_in_full_chain() -> None:
    found = path_match(Subject(None, {"folder": "a/b"}), "folder", "/")
    assert found is not None
    payload: dict[str, Any] = {}
    plan = JoinPlan("tax_p", "folders", 1, "hierarchical", [], path_field="folder", field_prefix="folders")
    enrichment.apply(payload, {}, plan, [found])
    assert payload["folders_tier1_id"] == path_nodes(["a"])[0]["node_id"]
    assert payload["folders_tier2_id"] == payload["folders_id"] == path_nodes(["a", "b"])[1]["node_id"]
    assert payload["folders_name"] == "b" and payload["folders_tier1_name"] == "a"


def test_scroll_filters_evaluated_in_memory_as_the_index_does() -> None:
    doc = StoredDocument("doc_1", "col_1", {"title": "Baking", "views": 12, "tags": ["Bread", "oven"]}, {"a": 1})

    def selects(filters: dict[str, Any]) -> bool:
        found = predicate(filters)
        assert found is not None
        return found(doc)

    assert selects({"title": "baking"}) and not selects({"title": "baking", "case_sensitive": True})
    assert selects({"AND": [{"field": "views", "operator": "gte", "value": 12}]})
    assert not selects({"AND": [{"field": "views", "operator": "gt", "value": 12}]})
    assert selects(
        {
            "OR": [
                {"field": "missing", "operator": "eq", "value": 1},
                {"field": "tags", "operator": "contains", "value": "brea"},
            ]
        }
    )
    assert selects({"NOT": [{"field": "title", "operator": "in", "value": ["astronomy", "sea"]}]})
    assert selects(
        {
            "AND": [
                {"field": "missing", "operator": "exists", "value": False},
                {"field": "_internal.a", "operator": "eq", "value": 1},
            ]
        }
    )
    assert selects(
        {
            "AND": [
                {"field": "title", "operator": "regex", "value": "^bak"},
                {"field": "document_id", "operator": "starts_with", "value": "doc_"},
            ]
        }
    )
    assert predicate(None) is None and predicate({}) is None
