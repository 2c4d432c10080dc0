"""Retriever inputs: checked against the retriever's `input_schema`, then put into stage parameters.

Templates use double braces: `{{INPUT.query}}` (the namespace is case-insensitive and may be
spelled INPUT, inputs or input). A string that is exactly one template takes the input's value
as it is (a list stays a list, so a vector can be passed as an input); templates inside longer
strings are replaced by the value's text. DOC/CONTEXT/STAGE templates belong to per-document
stages this server does not have; they are left as written.
"""

from __future__ import annotations

import re
from typing import Any

from strataflow.errors import ValidationError

_TEMPLATE = re.compile(r"\{\{\s*(?i:input|inputs)\.([A-Za-z0-9_\-\.]+)\s*\}\}")
_WHOLE = re.compile(r"^\s*\{\{\s*(?i:input|inputs)\.([A-Za-z0-9_\-\.]+)\s*\}\}\s*$")
MISSING = object()  # an input the caller did not give and the schema gives no default for

_CHECKS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "text": (str,),
    "date": (str,),
    "datetime": (str,),
    "image": (str,),
    "audio": (str,),
    "video": (str,),
    "pdf": (str,),
    "excel": (str,),
    "document_reference": (str, dict),
    "integer": (int,),
    "number": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _problem(name: str, message: str, kind: str) -> dict[str, str]:
    return {"type": kind, "location": f"inputs.{name}", "message": message}


def _type_ok(kind: str, value: Any) -> bool:
    allowed = _CHECKS.get(kind)
    if allowed is None:
        return True
    if isinstance(value, bool) and bool not in allowed:  # True is an int in Python, not in JSON schemas
        return False
    return isinstance(value, allowed)


def validate_inputs(schema: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs with defaults filled in; every problem at once in a 422."""
    problems: list[dict[str, str]] = []
    values = dict(inputs)
    for name, field in schema.items():
        value = values.get(name)
        if value is None:
            if field.get("default") is not None:
                values[name] = field["default"]
            elif field.get("required"):
                problems.append(_problem(name, f"input '{name}' is required", "missing"))
            continue
        kind = str(field.get("type") or "string").lower()
        if not _type_ok(kind, value):
            problems.append(_problem(name, f"input '{name}' must be of type {kind}", "type_error"))
        elif field.get("enum") and value not in field["enum"]:
            problems.append(_problem(name, f"input '{name}' must be one of {field['enum']}", "enum"))
    if problems:
        raise ValidationError(f"Invalid retriever inputs: {problems[0]['message']}", {"validation_errors": problems})
    return values


def _lookup(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def resolve(value: Any, inputs: dict[str, Any]) -> Any:
    """`value` with every INPUT template replaced; a whole-string template of a missing input is MISSING."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return _lookup(inputs, whole.group(1))

        def text(match: re.Match[str]) -> str:
            found = _lookup(inputs, match.group(1))
            return "" if found is MISSING or found is None else str(found)

        return _TEMPLATE.sub(text, value)
    if isinstance(value, dict):
        return {k: resolve(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, inputs) for v in value]
    return value
