"""`passthrough_extractor` v1: one document per source row, carrying the row's fields and vectors.

It runs no model. Between tiers it re-publishes upstream documents (a subset
via the collection's source filters, or with renamed/defaulted fields through
field passthrough) without recomputing their embeddings.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from strataflow.extractors.base import (
    ExtractContext,
    ExtractedDocument,
    Extractor,
    ExtractorInput,
    ExtractorParams,
    InputField,
    OutputField,
    Resources,
    RowResult,
)


class PassthroughExtractorParams(ExtractorParams):
    extractor_type: Literal["passthrough_extractor"] = "passthrough_extractor"


class PassthroughExtractor(Extractor[PassthroughExtractorParams]):
    name = "passthrough_extractor"
    version = "v1"
    description = "Copies each source row's fields and vectors into one document, unchanged."
    params_model = PassthroughExtractorParams
    inputs: ClassVar[list[InputField]] = []
    resources = Resources(num_cpus=0.25, memory_mb=256)
    copies_source = True

    def output_fields(self, params: PassthroughExtractorParams) -> list[OutputField]:
        return []  # the source's own fields: the collection takes them from its input schema

    def extract(
        self, rows: list[ExtractorInput], params: PassthroughExtractorParams, context: ExtractContext
    ) -> list[RowResult]:
        return [
            RowResult(
                row.row_id,
                documents=[
                    ExtractedDocument(
                        fields=dict(row.source.get("fields") or {}),
                        vectors={name: list(vector) for name, vector in (row.source.get("vectors") or {}).items()},
                    )
                ],
            )
            for row in rows
        ]
