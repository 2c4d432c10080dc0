"""Pure retrieval rules: inputs and templates, fusion, and which queries a vector space accepts."""

from __future__ import annotations

import pytest

from strataflow.errors import BadRequestError, ValidationError
from strataflow.extractors.media.visual import DESCRIPTOR_DIMENSIONS, DESCRIPTOR_NAME
from strataflow.index.records import StoredDocument
from strataflow.retrieval.features import FeatureTarget, QueryEmbedder
from strataflow.retrieval.inputs import MISSING, resolve, validate_inputs
from strataflow.retrieval.results import Hit, fuse
from strataflow.store.tables import Collection


def test_inputs_defaults_types_and_templates() -> None:
    schema = {
        "query": {"type": "text", "required": True},
        "k": {"type": "integer", "default": 5},
        "mode": {"type": "string", "enum": ["a", "b"]},
    }
    assert validate_inputs(schema, {"query": "x"}) == {"query": "x", "k": 5}
    with pytest.raises(ValidationError) as problems:
        validate_inputs(schema, {"k": True, "mode": "c"})
    assert {p["location"] for p in problems.value.details["validation_errors"]} == {
        "inputs.query",
        "inputs.k",
        "inputs.mode",
    }
    inputs = {"query": "moon", "vec": [1, 2], "nested": {"a": "b"}}
    assert resolve(
        {
            "q": "{{INPUT.query}}",
            "v": "{{ inputs.vec }}",
            "t": "about {{Input.query}}!",
            "n": "{{input.nested.a}}",
            "gone": "{{INPUT.none}}",
            "doc": "{{DOC.x}}",
        },
        inputs,
    ) == {"q": "moon", "v": [1, 2], "t": "about moon!", "n": "b", "gone": MISSING, "doc": "{{DOC.x}}"}


def _hit(doc_id: str, score: float) -> Hit:
    return Hit(StoredDocument(document_id=doc_id, collection_id="c"), score)


def test_fusion_methods_agree_on_a_shared_winner() -> None:
    first = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.1)]
    second = [_hit("b", 12.0), _hit("d", 11.0), _hit("a", 2.0)]
    for method in ("rrf", "weighted", "dbsf"):
        fused = fuse([("v", first, 1.0), ("t", second, 1.0)], method)
        assert fused[0].document.document_id == "b", method
        assert set(fused[0].scores) == {"v", "t"}
    assert fuse([("v", first, 1.0), ("t", second, 1.0)], "max")[0].document.document_id == "b"
    with pytest.raises(BadRequestError):
        fuse([("v", first, 1.0)], "learned")


def test_text_query_against_the_visual_descriptor_is_refused() -> None:
    target = FeatureTarget(
        Collection(collection_id="col_x"),
        "mixpeek://image_extractor@v1/visual_descriptor",
        "image_extractor_v1_visual_descriptor",
        DESCRIPTOR_DIMENSIONS,
        DESCRIPTOR_NAME,
    )
    embedder = QueryEmbedder(index=None)  # type: ignore[arg-type]  # never reached for these queries
    with pytest.raises(BadRequestError, match="text query cannot be compared"):
        embedder.vector_for("a red car", target)
    vector = [0.1] * DESCRIPTOR_DIMENSIONS
    assert embedder.vector_for({"input_mode": "vector", "value": vector}, target) == vector
    with pytest.raises(BadRequestError, match="dimensions"):
        embedder.vector_for([0.1, 0.2], target)
