"""The extractor registry: which extractors exist, and how each describes itself.

The built-in table is `BUILTIN_EXTRACTORS` in `extractors/builtin.py`, loaded on first use;
`register` adds (or replaces) one more. The catalogue entry a
client sees (the FeatureExtractorResponseModel shape) is derived from the
extractor itself: its inputs, parameter model, output fields and vector
indexes, so the description can never drift from what the code does.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from strataflow.errors import BadRequestError, ValidationError
from strataflow.extractors.base import Extractor, ExtractorParams, VectorIndexSpec

_REGISTRY: dict[str, Extractor[Any]] = {}
_BUILTINS_LOADED = False
_LOAD_LOCK = threading.Lock()


class UnknownExtractorError(BadRequestError):
    type = "UnknownExtractorError"


def register(extractor: Extractor[Any]) -> Extractor[Any]:
    """Add an extractor; registering the same name and version again replaces it."""
    _REGISTRY[extractor.extractor_id] = extractor
    return extractor


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    with _LOAD_LOCK:
        if not _BUILTINS_LOADED:
            # Imported on first use, not at import time: it loads every modality (numpy, PIL, ...).
            from strataflow.extractors.builtin import BUILTIN_EXTRACTORS

            for extractor in BUILTIN_EXTRACTORS:
                _REGISTRY.setdefault(extractor.extractor_id, extractor)
            _BUILTINS_LOADED = True


def registered() -> list[Extractor[Any]]:
    _ensure_builtins()
    return sorted(_REGISTRY.values(), key=lambda e: e.extractor_id)


def find_extractor(extractor_id: str) -> Extractor[Any] | None:
    """By catalogue id (`{name}_{version}`), or None."""
    _ensure_builtins()
    return _REGISTRY.get(extractor_id)


def get_extractor(name: str, version: str) -> Extractor[Any]:
    """The extractor with this name and version; an unknown one is a clear 400."""
    extractor = find_extractor(f"{name}_{version}")
    if extractor is None:
        versions = sorted(e.version for e in _REGISTRY.values() if e.name == name)
        if versions:
            message = f"Feature extractor '{name}' has no version '{version}'; available: {', '.join(versions)}"
        else:
            message = f"Unknown feature extractor '{name}'"
        raise UnknownExtractorError(
            message,
            {"feature_extractor_name": name, "version": version, "available": [e.extractor_id for e in registered()]},
        )
    return extractor


def parse_parameters(extractor: Extractor[Any], raw: dict[str, Any] | None) -> ExtractorParams:
    """Validate collection `parameters` with the extractor's model; failures are a 422 naming each field."""
    values = dict(raw or {})
    declared = values.get("extractor_type")
    if declared is not None and declared != extractor.name:
        raise ValidationError(
            f"parameters.extractor_type is '{declared}' but the extractor is '{extractor.name}'",
            {
                "validation_errors": [
                    {
                        "type": "value_error",
                        "location": "feature_extractor.parameters.extractor_type",
                        "message": f"must be '{extractor.name}'",
                    }
                ]
            },
        )
    try:
        return extractor.params_model.model_validate(values)
    except PydanticValidationError as exc:
        problems = [
            {
                "type": err.get("type"),
                "location": ".".join(["feature_extractor", "parameters", *map(str, err.get("loc", ()))]),
                "message": err.get("msg"),
            }
            for err in exc.errors()
        ]
        first = problems[0]
        raise ValidationError(
            f"Invalid parameters for {extractor.extractor_id}: {first['location']}: {first['message']}",
            {"validation_errors": problems},
        ) from None


def stored_parameters(extractor: Extractor[Any], params: ExtractorParams) -> dict[str, Any]:
    """Parameters as echoed to clients: always with `extractor_type`, so SDKs decode the right class."""
    return {**params.model_dump(mode="json", exclude_none=True), "extractor_type": extractor.name}


def feature_uri(extractor: Extractor[Any], output_name: str) -> str:
    return f"mixpeek://{extractor.name}@{extractor.version}/{output_name}"


def vector_storage_name(extractor: Extractor[Any], spec: VectorIndexSpec) -> str:
    """Name of the vector field in documents (and the LanceDB column): unique per model."""
    return f"{extractor.extractor_id}_{spec.name}"


def vector_index_definition(extractor: Extractor[Any], spec: VectorIndexSpec) -> dict[str, Any]:
    """A VectorIndexDefinition: the feature URI, and the storage index it lives in."""
    return {
        "feature_uri": feature_uri(extractor, spec.name),
        "name": spec.name,
        "description": spec.description,
        "type": "single",
        "index": {
            "name": vector_storage_name(extractor, spec),
            "description": spec.description,
            "dimensions": spec.dimensions,
            "type": "dense",
            "distance": spec.distance,
            "datatype": spec.datatype,
            "inference_name": spec.model,
            "supported_inputs": sorted(spec.query_inputs or {field.type for field in extractor.inputs}),
        },
    }


def input_schema(extractor: Extractor[Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.name: {"type": f.type, "description": f.description} for f in extractor.inputs},
        "required": [f.name for f in extractor.inputs if f.required],
    }


def output_schema(extractor: Extractor[Any], params: ExtractorParams) -> dict[str, Any]:
    properties: dict[str, Any] = {
        f.name: {"type": f.type, "description": f.description} for f in extractor.output_fields(params)
    }
    for spec in extractor.vector_indexes(params):
        properties[vector_storage_name(extractor, spec)] = {
            "type": "array",
            "items": {"type": "float"},
            "dimensions": spec.dimensions,
            "description": spec.description,
        }
    return {"type": "object", "properties": properties}


def default_parameters(extractor: Extractor[Any]) -> dict[str, Any]:
    return {"extractor_type": extractor.name, **extractor.params_model().model_dump(mode="json")}


def describe(extractor: Extractor[Any]) -> dict[str, Any]:
    """The catalogue entry, derived from the extractor (FeatureExtractorResponseModel)."""
    defaults = extractor.params_model()
    return {
        "feature_extractor_name": extractor.name,
        "version": extractor.version,
        "feature_extractor_id": extractor.extractor_id,
        "description": extractor.description,
        "icon": "sparkles",
        "source": "builtin",
        "input_schema": input_schema(extractor),
        "output_schema": output_schema(extractor, defaults),
        "parameter_schema": extractor.params_model.model_json_schema(),
        "supported_input_types": sorted({f.type for f in extractor.inputs}),
        "max_inputs": {f.name: 1 for f in extractor.inputs},
        "default_parameters": default_parameters(extractor),
        "required_vector_indexes": [vector_index_definition(extractor, s) for s in extractor.possible_vector_indexes()]
        or None,
        "required_payload_indexes": None,
        "position_fields": extractor.position_fields(),
    }
