"""Feature URIs to vector columns, and queries to vectors in the same space as those columns.

A feature URI (`mixpeek://{extractor}@{version}/{output}`) names a vector index of a
collection. The index definition records which model wrote the vectors
(`index.inference_name`); a text query is embedded with that same model (a vision model's
text tower for its image space), or refused when no text can be compared with the space
(the image colour/edge descriptor). Image queries reach vision spaces only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.extractors.text_models import TEXT_MODELS, embed_texts
from strataflow.extractors.vision.catalog import model_of_inference
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.vision_queries import VisionQueries, image_source
from strataflow.store.tables import Collection

_MODEL_KEYS = {spec.model_name: key for key, spec in TEXT_MODELS.items()}


@dataclass(frozen=True)
class FeatureTarget:
    """Where one feature URI lives in one collection."""

    collection: Collection
    feature_uri: str
    column: str
    dimensions: int
    model: str

    @property
    def text_model(self) -> str | None:
        """Key of the text model that made these vectors, None when no text model did."""
        return _MODEL_KEYS.get(self.model)

    @property
    def vision_model(self) -> str | None:
        """Name of the vision model that made these vectors, None when none did."""
        return model_of_inference(self.model)


def known_features(collections: list[Collection]) -> list[str]:
    return sorted({d["feature_uri"] for c in collections for d in c.vector_indexes})


def feature_targets(collections: list[Collection], feature_uri: str) -> list[FeatureTarget]:
    """The collections holding this feature; none is a 400 listing the features there are."""
    targets = [
        FeatureTarget(
            c,
            feature_uri,
            d["index"]["name"],
            int(d["index"]["dimensions"]),
            str(d["index"].get("inference_name") or ""),
        )
        for c in collections
        for d in c.vector_indexes
        if d["feature_uri"] == feature_uri
    ]
    if not targets:
        raise BadRequestError(
            f"Unknown feature URI '{feature_uri}' for the retriever's collections",
            {"feature_uri": feature_uri, "available": known_features(collections)},
        )
    spaces = {(t.dimensions, t.model) for t in targets}
    if len(spaces) > 1:
        raise BadRequestError(
            f"Feature '{feature_uri}' has different vector spaces across collections", {"feature_uri": feature_uri}
        )
    return targets


def _check_vector(value: Any, target: FeatureTarget) -> list[float]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    ):
        raise BadRequestError("A vector query must be a non-empty list of numbers", {"feature_uri": target.feature_uri})
    if len(value) != target.dimensions:
        raise BadRequestError(
            f"Query vector has {len(value)} dimensions; feature '{target.feature_uri}' has {target.dimensions}",
            {"feature_uri": target.feature_uri, "dimensions": len(value), "expected": target.dimensions},
        )
    vector = [float(x) for x in value]
    if not all(math.isfinite(x) for x in vector):
        raise BadRequestError("A query vector holds a value that is not a finite number")
    return vector


class QueryEmbedder:
    """Turns queries into vectors, embedding each distinct text once per execution."""

    def __init__(self, index: DocumentIndex, vision: VisionQueries | None = None) -> None:
        self.index = index
        self.vision = vision or VisionQueries()
        self._cache: dict[tuple[str, str], list[float]] = {}

    def vector_for(self, query: Any, target: FeatureTarget) -> list[float]:
        if isinstance(query, list):
            return _check_vector(query, target)
        if isinstance(query, dict):
            mode = str(query.get("input_mode") or query.get("type") or "text").lower()
            value = query.get("value", query.get("text"))
            if mode == "vector":
                return _check_vector(value, target)
            if mode in ("document", "document_id"):
                reference = query.get("document_ref")
                if not isinstance(reference, dict):
                    reference = {}
                document_id = value or query.get("document_id") or reference.get("document_id") or ""
                return self._document_vector(str(document_id), target)
            if mode in ("content", "image", "url"):
                return self._image_vector(image_source(query, mode), target)
            if mode != "text":
                raise BadRequestError(
                    f"Unsupported query input_mode '{mode}'; use text, vector, document, content, image or url",
                    {"feature_uri": target.feature_uri},
                )
            query = value
        if not isinstance(query, str):
            raise BadRequestError(
                "A search query must be text, a vector or a document reference", {"feature_uri": target.feature_uri}
            )
        return self._text_vector(query, target)

    def _text_vector(self, text: str, target: FeatureTarget) -> list[float]:
        if target.vision_model is not None:
            return self.vision.text(target.vision_model, text)
        model = target.text_model
        if model is None:
            raise BadRequestError(
                f"Feature '{target.feature_uri}' holds '{target.model}' vectors, which a text query cannot be "
                'compared with; search it with a vector or a document id ({"input_mode": "document", ...})',
                {"feature_uri": target.feature_uri, "model": target.model, "query_type": "text"},
            )
        key = (model, text)
        if key not in self._cache:
            self._cache[key] = embed_texts([text], model)[0].tolist()
        return self._cache[key]

    def _image_vector(self, source: str | None, target: FeatureTarget) -> list[float]:
        if target.vision_model is None:
            raise BadRequestError(
                f"Feature '{target.feature_uri}' holds '{target.model}' vectors, which an image cannot be compared "
                "with; image queries search the visual embedding of a vision model (feature vision_<model>)",
                {"feature_uri": target.feature_uri, "model": target.model, "query_type": "image"},
            )
        if source is None:
            raise BadRequestError(
                "An image query needs its image: a data URI, base64 bytes or an http(s) URL in 'value'",
                {"feature_uri": target.feature_uri},
            )
        return self.vision.image(target.vision_model, source)

    def _document_vector(self, document_id: str, target: FeatureTarget) -> list[float]:
        """Query by example: the stored vector of a document of the same collection."""
        doc = self.index.get(target.collection.collection_id, document_id, with_vectors=True)
        vector = doc.vectors.get(target.column) if doc else None
        if vector is None:
            raise BadRequestError(
                f"Document '{document_id}' has no '{target.feature_uri}' vector in collection "
                f"'{target.collection.collection_id}'",
                {"document_id": document_id},
            )
        return [float(x) for x in vector]
