"""Writing matches into a document, and taking a taxonomy's earlier values out first.

What a taxonomy wrote is recorded under `_internal.taxonomies.<taxonomy_id>` (the values it
set, the values it appended), so applying it again (a new version, a re-run) first removes
exactly those and then writes the new ones: old and new values are never mixed. The best
match also fills `_internal._taxonomy_<id>_id`, `_label` and `_score`; with top_k above 1
every kept match is listed in `_internal._taxonomy_<id>_assignments`.
"""

from __future__ import annotations

from typing import Any

from strataflow.schemas.taxonomies import EnrichmentField
from strataflow.services.taxonomies.join import JoinPlan, Match, dig

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
    for match in matches:
        for spec in _fields_of(match):
            value = dig(match.node_payload, spec.field_path)
            if value is None:
                continue
            target = spec.target
            if spec.merge_mode == "append":
                values = value if isinstance(value, list) else [value]
                current = payload.get(target)
                base = list(current) if isinstance(current, list) else ([] if current is None else [current])
                payload[target] = base + values
                appended.setdefault(target, []).extend(values)
            elif target not in written:  # replace: the best match's value; later matches do not overwrite
                payload[target] = value
                written[target] = value
    record: dict[str, Any] = {"version": plan.version, "written": written, "appended": appended}
    if error is not None:
        record["error"] = error
    if matches:
        best = matches[0]
        prefix = _prefix(plan.taxonomy_id)
        internal[prefix + "id"] = best.node_id
        internal[prefix + "label"] = best.label
        internal[prefix + "score"] = best.score
        if plan.kind == "hierarchical":
            internal[prefix + "path"] = best.path
            internal[prefix + "level"] = best.level
        if plan.top_k > 1 and plan.kind == "flat":
            internal[prefix + "assignments"] = [assignment(m) for m in matches]
        record.update(assignment(matches[0]))
    internal[RECORD_KEY] = {**(internal.get(RECORD_KEY) or {}), plan.taxonomy_id: record}
    return sorted({*written, *appended})


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
