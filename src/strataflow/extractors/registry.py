"""The extractor catalogue. Extractor modules register a `CatalogueEntry` here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CatalogueEntry:
    """How an extractor describes itself to clients (the FeatureExtractorResponseModel shape)."""

    name: str
    version: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    parameter_schema: dict[str, Any] | None = None
    supported_input_types: list[str] = field(default_factory=list)
    max_inputs: dict[str, int] = field(default_factory=dict)
    default_parameters: dict[str, Any] = field(default_factory=dict)
    required_vector_indexes: list[dict[str, Any]] | None = None
    required_payload_indexes: list[dict[str, Any]] | None = None
    icon: str = "sparkles"

    @property
    def extractor_id(self) -> str:
        return f"{self.name}_{self.version}"

    def describe(self) -> dict[str, Any]:
        return {
            "feature_extractor_name": self.name,
            "version": self.version,
            "feature_extractor_id": self.extractor_id,
            "description": self.description,
            "icon": self.icon,
            "source": "builtin",
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "parameter_schema": self.parameter_schema,
            "supported_input_types": self.supported_input_types,
            "max_inputs": self.max_inputs,
            "default_parameters": self.default_parameters,
            "required_vector_indexes": self.required_vector_indexes,
            "required_payload_indexes": self.required_payload_indexes,
        }


_CATALOGUE: dict[str, CatalogueEntry] = {}


def register_entry(entry: CatalogueEntry) -> None:
    _CATALOGUE[entry.extractor_id] = entry


def catalogue() -> list[CatalogueEntry]:
    return sorted(_CATALOGUE.values(), key=lambda e: e.extractor_id)


def find_entry(extractor_id: str) -> CatalogueEntry | None:
    return _CATALOGUE.get(extractor_id)
