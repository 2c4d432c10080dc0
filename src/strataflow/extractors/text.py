"""`text_extractor` v1: chunk text, embed each chunk with a real offline sentence model.

One document per chunk, carrying `text`, `chunk_index`, `total_chunks` and the
chunk's character offsets in the source text. The `model` parameter picks the
embedding model; each model is its own vector index (and feature URI), so
vectors of different models never share a space.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from strataflow.extractors.base import (
    ErrorCategory,
    ExtractContext,
    ExtractedDocument,
    ExtractionError,
    Extractor,
    ExtractorInput,
    ExtractorParams,
    InputField,
    OutOfMemory,
    OutputField,
    Resources,
    RowResult,
    VectorIndexSpec,
    over_limit,
)
from strataflow.extractors.chunking import Chunk, SplitBy, chunk_text
from strataflow.extractors.text_models import TEXT_MODELS, embed_texts

# The output name of each model's vector index (the last part of its feature URI).
MODEL_INDEX_NAMES = {"minilm": "all_minilm_l6_v2", "wordllama": "wordllama_l2_supercat_256"}
# Texts embedded per call; between calls the extractor checks whether it should stop.
EMBED_CALL_SIZE = 2048


class TextExtractorParams(ExtractorParams):
    extractor_type: Literal["text_extractor"] = "text_extractor"
    split_by: SplitBy = Field(default=SplitBy.NONE, description="Unit to chunk by; 'none' keeps the whole text.")
    chunk_size: int = Field(default=1000, ge=1, le=10000, description="Units per chunk (unit = split_by).")
    chunk_overlap: int = Field(default=0, ge=0, le=5000, description="Units shared by consecutive chunks.")
    model: Literal["minilm", "wordllama"] = Field(
        default="minilm",
        description="Embedding model: 'minilm' (all-MiniLM-L6-v2, 384-d) or 'wordllama' (256-d, for bulk text).",
    )
    batch_size: int = Field(default=64, ge=1, le=1024, description="Texts per model forward pass.")
    response_shape: Any = Field(default=None, description="Not supported: no LLM runs offline here.")

    @model_validator(mode="after")
    def _check(self) -> TextExtractorParams:
        if self.split_by is not SplitBy.NONE and self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        if self.response_shape is not None:
            raise ValueError("response_shape (LLM structured extraction) is not available in Strataflow")
        return self


def _index_spec(model: str) -> VectorIndexSpec:
    spec = TEXT_MODELS[model]
    return VectorIndexSpec(
        name=MODEL_INDEX_NAMES[model], dimensions=spec.dimensions, model=spec.model_name, description=spec.description
    )


def _model_failure(exc: Exception) -> ExtractionError:
    if isinstance(exc, (ImportError, OSError)):
        category = ErrorCategory.DEPENDENCY  # the model package or its weights are missing
    elif isinstance(exc, MemoryError):
        return OutOfMemory(ErrorCategory.RESOURCE, "text embedding ran out of memory")
    else:
        category = ErrorCategory.RUNTIME
    return ExtractionError(category, f"text embedding failed: {type(exc).__name__}: {exc}")


class TextExtractor(Extractor[TextExtractorParams]):
    name = "text_extractor"
    version = "v1"
    description = "Splits text into chunks and embeds each chunk with an offline sentence-embedding model."
    params_model = TextExtractorParams
    inputs: ClassVar[list[InputField]] = [InputField("text", "text", True, "The text to chunk and embed.")]
    resources = Resources(num_cpus=1.0, memory_mb=1024)

    def output_fields(self, params: TextExtractorParams) -> list[OutputField]:
        return [
            OutputField("text", "text", "The chunk's text (the whole text when split_by is 'none')."),
            OutputField("chunk_index", "integer", "Position of the chunk in its source text, from 0."),
            OutputField("total_chunks", "integer", "How many chunks the source text gave."),
            OutputField("char_start", "integer", "Offset of the chunk's first character in the source text."),
            OutputField("char_end", "integer", "Offset just past the chunk's last character."),
        ]

    def vector_indexes(self, params: TextExtractorParams) -> list[VectorIndexSpec]:
        return [_index_spec(params.model)]

    def possible_vector_indexes(self) -> list[VectorIndexSpec]:
        return [_index_spec(model) for model in MODEL_INDEX_NAMES]

    def position_fields(self) -> list[str]:
        return ["chunk_index"]

    def extract(
        self, rows: list[ExtractorInput], params: TextExtractorParams, context: ExtractContext
    ) -> list[RowResult]:
        results = {row.row_id: RowResult(row.row_id) for row in rows}
        chunked: list[tuple[str, list[Chunk]]] = []
        for row in rows:
            try:
                chunked.append(
                    (
                        row.row_id,
                        chunk_text(
                            self._text_of(row, context.limits.text_max_bytes),
                            params.split_by,
                            params.chunk_size,
                            params.chunk_overlap,
                        ),
                    )
                )
            except ExtractionError as error:
                results[row.row_id].error = error
        texts = [chunk.text for _, chunks in chunked for chunk in chunks]
        try:
            vectors = self._embed(texts, params, context)
        except ExtractionError as error:
            for row_id, chunks in chunked:
                if chunks:
                    results[row_id].error = error
            return list(results.values())
        name = MODEL_INDEX_NAMES[params.model]
        position = 0
        for row_id, chunks in chunked:
            total = len(chunks)
            for chunk in chunks:
                results[row_id].documents.append(
                    ExtractedDocument(
                        fields={
                            "text": chunk.text,
                            "chunk_index": chunk.index,
                            "total_chunks": total,
                            "char_start": chunk.start,
                            "char_end": chunk.end,
                        },
                        vectors={name: vectors[position]},
                        position={"chunk_index": chunk.index},
                    )
                )
                position += 1
        return list(results.values())

    @staticmethod
    def _text_of(row: ExtractorInput, max_bytes: int) -> str:
        value = row.values.get("text")
        if value is None:
            raise ExtractionError(ErrorCategory.VALIDATION, "input 'text' is missing")
        if not isinstance(value, str):
            raise ExtractionError(ErrorCategory.VALIDATION, f"input 'text' must be text, not {type(value).__name__}")
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise over_limit("input 'text'", max_bytes, "text_max_bytes", "bytes", size)
        return value

    @staticmethod
    def _embed(texts: list[str], params: TextExtractorParams, context: ExtractContext) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_CALL_SIZE):
            if context.should_stop():
                raise ExtractionError(ErrorCategory.RUNTIME, "extraction was stopped before this row finished")
            try:
                batch = embed_texts(
                    texts[start : start + EMBED_CALL_SIZE],
                    key=params.model,
                    device=context.device,
                    batch_size=params.batch_size,
                )
            except Exception as exc:  # any model failure fails the rows it touched, categorised
                raise _model_failure(exc) from exc
            vectors.extend(batch.tolist())
        return vectors
