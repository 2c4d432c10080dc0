"""A dry run of a document write: a candidate body checked against the collection's output schema."""

from __future__ import annotations

from typing import Any

from strataflow.errors import BadRequestError
from strataflow.services.buckets.schema import check_value
from strataflow.services.collections.crud import vector_table_columns
from strataflow.services.collections.schema import SYSTEM_FIELDS
from strataflow.services.documents.model import ECHOED_KEYS
from strataflow.store.tables import Collection


def _vector_violation(name: str, value: Any, dimensions: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        return f"Vector '{name}' must be a list of numbers"
    if len(value) != dimensions:
        return f"Vector '{name}' has {len(value)} dimensions; its index has {dimensions}"
    return None


def _field_violation(schema: dict[str, Any], name: str, value: Any) -> str | None:
    if name in SYSTEM_FIELDS or name.startswith("_"):
        return f"Cannot write system field '{name}'"
    try:
        check_value(schema, name, value)  # the same type and enum check a bucket object's fields get
    except BadRequestError as error:
        return error.message
    return None


def validate_document(collection: Collection, body: dict[str, Any]) -> dict[str, Any]:
    """Every violation in the body (not just the first), and warnings for fields the schema does not declare.

    Writes are schemaless beyond the declared fields, so an undeclared field is a warning, not a violation."""
    schema = collection.output_schema or {}
    declared = schema.get("properties", {})
    vectors = vector_table_columns(collection)
    violations: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for name, value in body.items():
        if name in ECHOED_KEYS:
            continue
        if name in vectors:
            problem = _vector_violation(name, value, vectors[name])
        else:
            problem = _field_violation(schema, name, value)
        if problem:
            violations.append({"field": name, "message": problem})
        elif name not in declared:
            warnings.append({"field": name, "message": f"'{name}' is not in the collection's output schema"})
    return {
        "valid": not violations,
        "collection_id": collection.collection_id,
        "violations": violations,
        "warnings": warnings,
        "checked_fields": sorted(k for k in body if k not in ECHOED_KEYS),
    }
