"""What a collection reads and writes: input mappings, field passthrough and the output schema.

Pure functions over schemas (the `properties` dicts of bucket schemas and
collection output schemas), used at creation to refuse a bad configuration
with a clear 400, and by the runner to resolve the same mappings at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.extractors.base import Extractor, ExtractorParams
from strataflow.services.buckets.schema import FILE_TYPES, FieldType

# Names every document carries or that the index uses: user fields may not take them.
SYSTEM_FIELDS = frozenset(
    {
        "document_id",
        "collection_id",
        "namespace_id",
        "_internal",
        "internal",
        "document_blobs",
        "created_at",
        "updated_at",
        "root_object_id",
        "root_bucket_id",
        "source_type",
        "source_object_id",
        "source_document_id",
        "source_collection_id",
        "lineage_path",
        "score",
        "_distance",
        "_score",
        "_rowid",
        "payload",
    }
)
TARGET_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_ALL_TYPES = frozenset(t.value for t in FieldType)
# Which schema field types can feed an extractor input of a given type.
ACCEPTS: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "string"}),
    "string": frozenset({"string", "text"}),
    "audio": frozenset({"audio", "video"}),
    "number": frozenset({"number", "integer", "float"}),
    "object": _ALL_TYPES,
    "any": _ALL_TYPES,
}


@dataclass(frozen=True)
class ResolvedInput:
    """Where one extractor input comes from."""

    input_key: str
    input_type: str
    source_type: str  # payload | literal | vector
    path: str | None = None
    override: Any = None


@dataclass(frozen=True)
class ResolvedPassthrough:
    source_path: str
    target: str
    default: Any = None
    required: bool = False


def lookup(schema: dict[str, Any], path: str, from_bucket: bool) -> dict[str, Any] | None:
    """The schema field a dot path names, or None.

    Inside an object field that declares no properties any subpath is accepted, typed "any".
    """
    properties = schema.get("properties", {})
    parts = path.split(".")
    if from_bucket and parts[0] == "metadata" and "metadata" not in properties and len(parts) > 1:
        parts = parts[1:]  # object metadata may be addressed as `metadata.<key>`
    field: dict[str, Any] | None = None
    for part in parts:
        if not part:
            return None
        if field is not None:
            if field.get("type") == "object" and not field.get("properties"):
                return {"type": "any"}
            properties = field.get("properties") or {}
        field = properties.get(part)
        if field is None:
            return None
    return field


def vector_fields_of(schema: dict[str, Any]) -> set[str]:
    """Vector fields an upstream collection's output schema lists (arrays with dimensions)."""
    return {n for n, f in schema.get("properties", {}).items() if f.get("type") == "array" and "dimensions" in f}


def _normalise_mappings(raw: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    if isinstance(raw, list):
        return [m if isinstance(m, dict) else m.model_dump() for m in raw]
    items = []
    for key, value in raw.items():
        if isinstance(value, str):
            items.append({"input_key": key, "source_type": "payload", "path": value})
        elif isinstance(value, dict):
            items.append({"input_key": key, **value})
        else:
            raise BadRequestError(
                f"input_mappings['{key}'] must be a field path or a mapping object", {"input_key": key}
            )
    return items


def resolve_input_mappings(
    extractor: Extractor[Any],
    raw: dict[str, Any] | list[Any],
    input_schema: dict[str, Any],
    *,
    from_bucket: bool,
    vector_names: set[str],
) -> list[ResolvedInput]:
    """Check every mapping against the extractor's inputs and the source schema."""
    declared = {field.name: field for field in extractor.inputs}
    resolved: dict[str, ResolvedInput] = {}
    for item in _normalise_mappings(raw):
        key = item.get("input_key")
        if key not in declared:
            raise BadRequestError(
                f"{extractor.extractor_id} has no input '{key}'",
                {"input_key": key, "extractor_inputs": sorted(declared)},
            )
        kind = declared[key].type
        source_type = item.get("source_type") or "payload"
        path = item.get("path")
        if source_type == "literal":
            if item.get("override") is None:
                raise BadRequestError(f"Literal input '{key}' needs an 'override' value", {"input_key": key})
            resolved[key] = ResolvedInput(key, kind, "literal", override=item["override"])
            continue
        if not isinstance(path, str) or not path:
            raise BadRequestError(f"Input mapping '{key}' needs a 'path'", {"input_key": key})
        if source_type == "vector":
            if path not in vector_names:
                raise BadRequestError(
                    f"Input mapping '{key}' names vector '{path}', which the source does not have",
                    {"input_key": key, "path": path, "source_vectors": sorted(vector_names)},
                )
        else:
            _check_field(extractor, key, kind, path, input_schema, from_bucket)
        resolved[key] = ResolvedInput(key, kind, source_type, path=path)
    for name, field in declared.items():
        if name in resolved or not field.required:
            continue
        implicit = input_schema.get("properties", {}).get(name)
        if implicit is None or implicit.get("type") not in ACCEPTS.get(field.type, {field.type}):
            raise BadRequestError(
                f"{extractor.extractor_id} needs input '{name}': map it with input_mappings, "
                f'e.g. {{"{name}": "<source field>"}}',
                {"input_key": name, "available_fields": sorted(input_schema.get("properties", {}))},
            )
        resolved[name] = ResolvedInput(name, field.type, "payload", path=name)
    return list(resolved.values())


def _check_field(
    extractor: Extractor[Any], key: str, kind: str, path: str, schema: dict[str, Any], from_bucket: bool
) -> None:
    field = lookup(schema, path, from_bucket)
    if field is None:
        raise BadRequestError(
            f"Input mapping '{key}' names field '{path}', which is not in the collection's input schema",
            {"input_key": key, "path": path, "available_fields": sorted(schema.get("properties", {}))},
        )
    accepted = ACCEPTS.get(kind, frozenset({kind}))
    if field.get("type") != "any" and field.get("type") not in accepted:
        raise BadRequestError(
            f"Input '{key}' of {extractor.extractor_id} takes {kind}, but '{path}' is {field.get('type')}",
            {"input_key": key, "path": path, "field_type": field.get("type"), "accepted_types": sorted(accepted)},
        )


def resolve_passthrough(
    items: list[Any], input_schema: dict[str, Any], reserved: set[str], *, from_bucket: bool
) -> list[ResolvedPassthrough]:
    """Each passthrough's target name, refusing unknown sources and name collisions."""
    resolved: list[ResolvedPassthrough] = []
    seen: set[str] = set()
    for raw in items:
        item = raw if isinstance(raw, dict) else raw.model_dump()
        source_path = item["source_path"]
        target = item.get("target_path") or source_path.split(".")[-1]
        if lookup(input_schema, source_path, from_bucket) is None and item.get("default") is None:
            raise BadRequestError(
                f"Passthrough field '{source_path}' is not in the collection's input schema",
                {"source_path": source_path, "available_fields": sorted(input_schema.get("properties", {}))},
            )
        if not TARGET_NAME.match(target):
            raise BadRequestError(
                f"Passthrough target '{target}' must use letters, digits, '_' or '-'", {"target_path": target}
            )
        if target in SYSTEM_FIELDS or target.startswith("_"):
            raise BadRequestError(
                f"Passthrough target '{target}' collides with a system field",
                {"target_path": target, "system_fields": sorted(SYSTEM_FIELDS)},
            )
        if target in reserved:
            raise BadRequestError(
                f"Passthrough target '{target}' collides with an extractor output",
                {"target_path": target, "extractor_outputs": sorted(reserved)},
            )
        if target in seen:
            raise BadRequestError(f"Two passthrough fields both write '{target}'", {"target_path": target})
        seen.add(target)
        resolved.append(ResolvedPassthrough(source_path, target, item.get("default"), bool(item.get("required"))))
    return resolved


def _as_output(field: dict[str, Any]) -> dict[str, Any]:
    """A source field as it appears in documents: file blobs are carried as their URL."""
    out = {k: v for k, v in field.items() if k != "required"}
    if field.get("type") in {t.value for t in FILE_TYPES}:
        return {"type": "string", "description": f"URL of the source {field['type']} blob"}
    return out


def output_schema(
    extractor: Extractor[Any],
    params: ExtractorParams,
    input_schema: dict[str, Any],
    passthrough: list[ResolvedPassthrough],
    include_all: bool,
    from_bucket: bool,
    vector_fields: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Fields of the documents this collection writes, known before any document exists."""
    produced = {f.name: {"type": f.type, "description": f.description} for f in extractor.output_fields(params)}
    properties: dict[str, Any] = {}
    if include_all or extractor.copies_source:
        for name, field in input_schema.get("properties", {}).items():
            if name not in produced and name not in SYSTEM_FIELDS and name not in vector_fields:
                properties[name] = _as_output(field)
    for item in passthrough:
        field = lookup(input_schema, item.source_path, from_bucket) or {"type": "string"}
        properties[item.target] = _as_output(field)
    properties.update(produced)
    properties.update(vector_fields)
    return {"properties": properties}


def merged_schema(schemas: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """One schema for several sources, which must agree on names, types and required flags."""
    items = list(schemas.items())
    first_id, first = items[0]
    shape = {n: (f.get("type"), bool(f.get("required"))) for n, f in first.get("properties", {}).items()}
    for source_id, schema in items[1:]:
        other = {n: (f.get("type"), bool(f.get("required"))) for n, f in schema.get("properties", {}).items()}
        if other != shape:
            differing = sorted(set(shape.items()) ^ set(other.items()))
            raise BadRequestError(
                f"Source {kind}s {first_id} and {source_id} have incompatible schemas",
                {"differences": [name for name, _ in differing]},
            )
    return {"properties": dict(first.get("properties", {}))}
