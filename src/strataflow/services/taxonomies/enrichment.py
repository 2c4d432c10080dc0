"""Writing matches into a document, and taking a taxonomy's earlier values out first.

What a taxonomy wrote is recorded under `_internal.taxonomies.<taxonomy_id>` (the values it
set, the values it appended), so applying it again (a new version, a re-run) first removes
exactly those and then writes the new ones: old and new values are never mixed. The best
match also fills `_internal._taxonomy_<id>_id`, `_label` and `_score`; with top_k above 1
every kept match is listed in `_internal._taxonomy_<id>_assignments`.
"""

from __future__ import annotations

from typing import Any

from strataflow.paths import value_at
from strataflow.schemas.taxonomies import EnrichmentField
from strataflow.services.taxonomies.join import JoinPlan, Match, path_node_id

RECORD_KEY = "taxonomies"


def _prefix(taxonomy_id: str) -> str:
    return f"_taxonomy_{taxonomy_id}_"


def clear(payload: dict[str, Any], internal: dict[str, Any], taxonomy_id: str) -> None:
    """Remove what this taxonomy wrote earlier. A value a user changed since is left alone."""
    records = dict(internal.get(RECORD_KEY) or {})
    record = records.pop(taxonomy_id, None) or {}
    internal[RECORD_KEY] = records
    for key in [k for k in internal if k.startswith(_prefix(taxonomy_id))]:
        del internal[key]
    for target, value in (record.get("written") or {}).items():
        if payload.get(target) == value:
            del payload[target]
    for target, values in (record.get("appended") or {}).items():
        current = payload.get(target)
        if not isinstance(current, list):
            continue
        remaining = list(current)
        for value in values:
            if value in remaining:
                remaining.remove(value)
        payload[target] = remaining


def _fields_of(match: Match) -> list[EnrichmentField]:
    if match.fields is not None:
        return match.fields
    return [EnrichmentField(field_path=k) for k in match.node_payload]  # no list: the whole node payload


def apply(
    payload: dict[str, Any], internal: dict[str, Any], plan: JoinPlan, matches: list[Match], error: str | None = None
) -> list[str]:
    """Replace this taxonomy's values in the document by `matches`' (best first); the fields written."""
    clear(payload, internal, plan.taxonomy_id)
    written: dict[str, Any] = {}
    appended: dict[str, list[Any]] = {}
    hierarchical = plan.kind == "hierarchical"
    # The node fields under their own names: every match (a hierarchy: the deepest and the ancestors
    # it inherits from); best_match keeps the deepest alone; full_chain writes them per tier instead.
    plain = matches[:1] if hierarchical and plan.style == "best_match" else matches
    if hierarchical and plan.style == "full_chain":
        plain = []
    for match in plain:
        for spec in _fields_of(match):
            value = value_at(match.node_payload, spec.field_path)
            if value is not None:
                _put(payload, written, appended, spec.target, value, spec.merge_mode == "append")
    if hierarchical and matches:
        for target, value in hierarchy_fields(plan, matches).items():
            _put(payload, written, appended, target, value, False)
    record: dict[str, Any] = {"version": plan.version, "written": written, "appended": appended}
    if error is not None:
        record["error"] = error
    if matches:
        best = matches[0]
        prefix = _prefix(plan.taxonomy_id)
        internal[prefix + "id"] = best.node_id
        internal[prefix + "label"] = best.label
        internal[prefix + "score"] = best.score
        if hierarchical:
            internal[prefix + "path"] = best.path
            internal[prefix + "level"] = best.level
        if plan.top_k > 1 and plan.kind == "flat":
            internal[prefix + "assignments"] = [assignment(m) for m in matches]
        record.update(assignment(matches[0]))
    internal[RECORD_KEY] = {**(internal.get(RECORD_KEY) or {}), plan.taxonomy_id: record}
    return sorted({*written, *appended})


def _put(
    payload: dict[str, Any],
    written: dict[str, Any],
    appended: dict[str, list[Any]],
    target: str,
    value: Any,
    append: bool,
) -> None:
    if append:
        values = value if isinstance(value, list) else [value]
        current = payload.get(target)
        base = list(current) if isinstance(current, list) else ([] if current is None else [current])
        payload[target] = base + values
        appended.setdefault(target, []).extend(values)
    elif target not in written:  # replace: the best match's value; later matches do not overwrite
        payload[target] = value
        written[target] = value


def hierarchy_fields(plan: JoinPlan, matches: list[Match]) -> dict[str, Any]:
    """The fields a hierarchical assignment writes besides the node fields, by style (prefix p =
    the taxonomy's name): best_match: p_id, p_name, p_path, p_score of the deepest match;
    full_chain: per level of its path (tier n = level n-1), p_tier<n>_id, _name, _score and the
    node fields of that level's match as p_tier<n>_<target>; combined: both."""
    best, p = matches[0], plan.field_prefix
    fields: dict[str, Any] = {}
    if plan.style in ("best_match", "combined"):
        fields.update({f"{p}_id": best.node_id, f"{p}_name": best.label, f"{p}_path": list(best.path)})
        fields[f"{p}_score"] = best.score
    if plan.style in ("full_chain", "combined"):
        by_level = {m.level: m for m in reversed(matches)}
        for level, label in enumerate(best.path):
            tier = f"{p}_tier{level + 1}_"
            match = by_level.get(level)
            if plan.path_field is not None:  # a path hierarchy: every prefix is a node
                fields[tier + "id"] = path_node_id(best.path[: level + 1])
            elif match is not None:
                fields[tier + "id"] = match.node_id
                fields[tier + "score"] = match.score
            fields[tier + "name"] = label
            if match is None:
                continue
            for spec in _fields_of(match):
                value = value_at(match.node_payload, spec.field_path)
                if value is not None:
                    fields.setdefault(tier + spec.target, value)
    return fields


def assignment(match: Match) -> dict[str, Any]:
    return {
        "node_id": match.node_id,
        "label": match.label,
        "score": match.score,
        "path": match.path,
        "level": match.level,
    }


def taxonomy_match(plan: JoinPlan, document_id: str | None, match: Match, fields: list[str]) -> dict[str, Any]:
    """The SDK's TaxonomyMatch."""
    return {
        "document_id": document_id,
        "taxonomy_id": plan.taxonomy_id,
        "taxonomy_name": plan.taxonomy_name,
        "node_id": match.node_id,
        "label": match.label,
        "score": match.score,
        "path": match.path,
        "hierarchy_level": match.level,
        "enriched_fields": fields,
    }
