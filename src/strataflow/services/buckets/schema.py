"""Bucket schemas: check a schema definition, and check values against it."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from strataflow.errors import BadRequestError

PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    DATE = "date"
    DATETIME = "datetime"
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    PDF = "pdf"
    EXCEL = "excel"


# Types whose values are files: their bytes live in the blob store.
FILE_TYPES = frozenset(
    {FieldType.TEXT, FieldType.IMAGE, FieldType.AUDIO, FieldType.VIDEO, FieldType.PDF, FieldType.EXCEL}
)
SCALAR_TYPES = frozenset(
    {
        FieldType.STRING,
        FieldType.NUMBER,
        FieldType.INTEGER,
        FieldType.FLOAT,
        FieldType.BOOLEAN,
        FieldType.DATE,
        FieldType.DATETIME,
    }
)


def parse_type(value: Any, where: str) -> FieldType:
    try:
        return FieldType(str(value).lower())
    except ValueError:
        raise BadRequestError(
            f"Unknown field type '{value}' at {where}",
            {"field": where, "allowed_types": [t.value for t in FieldType]},
        ) from None


def normalize_field(field: Any, where: str, depth: int = 0) -> dict[str, Any]:
    if depth > 8:
        raise BadRequestError(f"Schema nests too deeply at {where}")
    if not isinstance(field, dict) or "type" not in field:
        raise BadRequestError(f"Schema field {where} needs a 'type'", {"field": where})
    out = dict(field)
    out["type"] = parse_type(field["type"], where).value
    if out.get("required") is None:
        out["required"] = False
    if isinstance(field.get("items"), dict):
        out["items"] = normalize_field(field["items"], f"{where}.items", depth + 1)
    if isinstance(field.get("properties"), dict):
        out["properties"] = {
            name: normalize_field(sub, f"{where}.{name}", depth + 1) for name, sub in field["properties"].items()
        }
    return out


def normalize_schema(schema: Any) -> dict[str, Any]:
    """Validate a bucket schema and return it with lower-case types."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        raise BadRequestError("bucket_schema needs a 'properties' object", {"field": "bucket_schema"})
    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if not PROPERTY_NAME.match(name) or len(name) > 100:
            raise BadRequestError(
                f"Invalid property name '{name}': use letters, digits and '_' (at most 100)",
                {"field": f"bucket_schema.properties.{name}"},
            )
        properties[name] = normalize_field(field, f"bucket_schema.properties.{name}")
    return {**schema, "properties": properties}


def check_unique_key(unique_key: dict[str, Any] | None, schema: dict[str, Any]) -> dict[str, Any] | None:
    if unique_key is None:
        return None
    fields = unique_key.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise BadRequestError("unique_key.fields must list at least one schema property", {"field": "unique_key"})
    for name in fields:
        prop = schema["properties"].get(name)
        if prop is None:
            raise BadRequestError(f"unique_key field '{name}' is not in the bucket schema", {"field": name})
        if FieldType(prop["type"]) not in SCALAR_TYPES:
            raise BadRequestError(f"unique_key field '{name}' must be a scalar property", {"field": name})
    policy = unique_key.get("default_policy")
    if policy not in (None, "insert", "update", "upsert"):
        raise BadRequestError("unique_key.default_policy must be insert, update or upsert")
    return {"fields": sorted(fields), "default_policy": policy}


def _matches(kind: FieldType, value: Any) -> bool:
    if kind in (FieldType.STRING, FieldType.TEXT):
        return isinstance(value, str)
    if kind is FieldType.BOOLEAN:
        return isinstance(value, bool)
    if kind is FieldType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (FieldType.NUMBER, FieldType.FLOAT):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is FieldType.OBJECT:
        return isinstance(value, dict)
    if kind is FieldType.ARRAY:
        return isinstance(value, list)
    if kind is FieldType.DATE:
        return isinstance(value, str) and _parses(date.fromisoformat, value)
    if kind is FieldType.DATETIME:
        return isinstance(value, str) and _parses(datetime.fromisoformat, value)
    return True  # file types are checked where their bytes are read


def _parses(parser: Any, value: str) -> bool:
    try:
        parser(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def check_value(schema: dict[str, Any], name: str, value: Any) -> None:
    field = schema.get("properties", {}).get(name)
    if field is None or value is None:
        return
    kind = FieldType(field["type"])
    if not _matches(kind, value):
        raise BadRequestError(
            f"Field '{name}' must be of type {kind.value}", {"field": name, "expected_type": kind.value}
        )
    if field.get("enum") and value not in field["enum"]:
        raise BadRequestError(f"Field '{name}' must be one of {field['enum']}", {"field": name})


def check_metadata(schema: dict[str, Any], metadata: dict[str, Any]) -> None:
    for name, value in metadata.items():
        check_value(schema, name, value)


def check_required(schema: dict[str, Any], present: set[str]) -> None:
    missing = sorted(
        name for name, field in schema.get("properties", {}).items() if field.get("required") and name not in present
    )
    if missing:
        raise BadRequestError(
            f"Missing required propert{'y' if len(missing) == 1 else 'ies'}: {', '.join(missing)}",
            {"missing_fields": missing},
        )
