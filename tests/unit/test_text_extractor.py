"""text_extractor and passthrough_extractor on real text with the real offline models (small inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strataflow.errors import ValidationError
from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractorInput
from strataflow.extractors.passthrough import PassthroughExtractor
from strataflow.extractors.registry import describe, get_extractor, parse_parameters, registered
from strataflow.extractors.text import TextExtractor

STORY = "The cat sat on the mat. It purred loudly.\n\nA storm rolled over the harbour. Boats rocked."


def run(params: dict, rows: list[ExtractorInput], tmp_path: Path) -> list:
    extractor = TextExtractor()
    return extractor.extract(rows, parse_parameters(extractor, params), ExtractContext(tmp_path))


def test_minilm_chunks_get_unit_384d_vectors(tmp_path: Path) -> None:
    results = run({"split_by": "sentences", "chunk_size": 1}, [ExtractorInput("r1", {"text": STORY})], tmp_path)
    docs = results[0].documents
    assert [d.fields["text"] for d in docs] == [
        "The cat sat on the mat.",
        "It purred loudly.",
        "A storm rolled over the harbour.",
        "Boats rocked.",
    ]
    assert [d.fields["chunk_index"] for d in docs] == [0, 1, 2, 3]
    assert {d.fields["total_chunks"] for d in docs} == {4}
    assert [d.position for d in docs] == [{"chunk_index": i} for i in range(4)]
    vectors = np.array([d.vectors["all_minilm_l6_v2"] for d in docs])
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # A real sentence model: the two cat sentences are closer to each other than to the storm.
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 3]
    again = run({"split_by": "sentences", "chunk_size": 1}, [ExtractorInput("r1", {"text": STORY})], tmp_path)
    assert np.allclose(vectors, [d.vectors["all_minilm_l6_v2"] for d in again[0].documents], atol=1e-5)


def test_wordllama_is_its_own_256d_index(tmp_path: Path) -> None:
    extractor = TextExtractor()
    params = parse_parameters(extractor, {"model": "wordllama", "split_by": "paragraphs", "chunk_size": 1})
    [spec] = extractor.vector_indexes(params)
    assert (spec.name, spec.dimensions) == ("wordllama_l2_supercat_256", 256)
    docs = extractor.extract([ExtractorInput("r", {"text": STORY})], params, ExtractContext(tmp_path))[0].documents
    assert len(docs) == 2 and len(docs[0].vectors["wordllama_l2_supercat_256"]) == 256
    assert "all_minilm_l6_v2" not in docs[0].vectors


def test_empty_text_is_zero_chunks_and_bad_input_fails_alone(tmp_path: Path) -> None:
    rows = [
        ExtractorInput("empty", {"text": "   \n"}),
        ExtractorInput("number", {"text": 42}),
        ExtractorInput("missing", {}),
        ExtractorInput("good", {"text": "Ünïcødé text, 東京。"}),
    ]
    results = {r.row_id: r for r in run({"model": "wordllama"}, rows, tmp_path)}
    assert results["empty"].documents == [] and not results["empty"].failed
    assert results["number"].error.category is ErrorCategory.VALIDATION
    assert "must be text" in results["number"].error.message
    assert results["missing"].error.category is ErrorCategory.VALIDATION
    assert results["good"].documents[0].fields["text"] == "Ünïcødé text, 東京。"


def test_stop_request_fails_rows_as_runtime(tmp_path: Path) -> None:
    extractor = TextExtractor()
    params = parse_parameters(extractor, {"model": "wordllama"})
    context = ExtractContext(tmp_path, should_stop=lambda: True)
    [result] = extractor.extract([ExtractorInput("r", {"text": "hello"})], params, context)
    assert result.error is not None and result.error.category is ErrorCategory.RUNTIME


@pytest.mark.parametrize(
    "params, where",
    [
        ({"split_by": "words", "chunk_size": 5, "chunk_overlap": 5}, "parameters"),
        ({"split_by": "markdown"}, "split_by"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"model": "e5"}, "model"),
        ({"response_shape": {"type": "object"}}, "parameters"),
        ({"extractor_type": "image_extractor"}, "extractor_type"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(params: dict, where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_parameters(TextExtractor(), params)
    assert where in caught.value.message


def test_sdk_extra_parameters_are_ignored() -> None:
    params = parse_parameters(
        TextExtractor(),
        {"extractor_type": "text_extractor", "source_type": "text", "segment_length_seconds": 120, "split_by": "words"},
    )
    assert params.split_by == "words"


def test_passthrough_copies_fields_and_vectors(tmp_path: Path) -> None:
    extractor = PassthroughExtractor()
    row = ExtractorInput("d1", {}, {"fields": {"text": "hi", "n": 1}, "vectors": {"v": [0.6, 0.8]}})
    [result] = extractor.extract([row], parse_parameters(extractor, {}), ExtractContext(tmp_path))
    assert result.documents[0].fields == {"text": "hi", "n": 1}
    assert result.documents[0].vectors == {"v": [0.6, 0.8]}


def test_catalogue_is_derived_from_the_extractors() -> None:
    entries = {e.extractor_id: describe(e) for e in registered()}
    text = entries["text_extractor_v1"]
    assert text["input_schema"]["required"] == ["text"]
    assert text["position_fields"] == ["chunk_index"]
    assert text["default_parameters"]["split_by"] == "none"
    assert "chunk_overlap" in text["parameter_schema"]["properties"]
    dims = {d["feature_uri"]: d["index"]["dimensions"] for d in text["required_vector_indexes"]}
    assert dims == {
        "mixpeek://text_extractor@v1/all_minilm_l6_v2": 384,
        "mixpeek://text_extractor@v1/wordllama_l2_supercat_256": 256,
    }
    assert entries["passthrough_extractor_v1"]["required_vector_indexes"] is None
    with pytest.raises(Exception) as unknown:
        get_extractor("text_extractor", "v9")
    assert "no version 'v9'" in str(unknown.value)
