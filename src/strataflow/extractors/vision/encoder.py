"""Loading a CLIP/SigLIP checkpoint once per process and encoding images and texts with it, in batches.

Image and text vectors of one model share one space: images are encoded by the image tower
(extraction, image queries), texts by the text tower (text queries). Vectors come back
L2-normalised float32, so cosine distance in the index is the model's own similarity.
On CUDA the model runs in float16; the vectors are still returned as float32.

Only files already on disk are read (`local_files_only`): extraction never downloads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from strataflow.extractors.base import ModelCache
from strataflow.extractors.vision.catalog import VisionModelInfo

log = logging.getLogger("strataflow.vision")

# The side an image is shrunk to (at most) before it waits for its batch: the processors resize to
# the model's input (224-384 pixels) anyway, and a batch of full-size photographs would hold
# gigabytes. Extraction and image queries both go through `prepare_image`, so one file always gives
# one vector, whichever way it came in.
PREPARED_MAX_SIDE = 1024


def prepare_image(image: Image.Image) -> Image.Image:
    """An RGB copy no larger than PREPARED_MAX_SIDE on its longest side (aspect ratio kept)."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animated image is embedded by its first frame
    prepared = image.convert("RGB")
    if max(prepared.size) > PREPARED_MAX_SIDE:
        prepared.thumbnail((PREPARED_MAX_SIDE, PREPARED_MAX_SIDE), Image.Resampling.BICUBIC)
    return prepared


def _normalised(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: NDArray[np.float32] = (vectors / norms).astype(np.float32)
    return result


def _features(output: Any) -> Any:
    """transformers 4 returns the projected features as a tensor, 5 as `pooler_output` of an output object."""
    return output if hasattr(output, "float") else output.pooler_output


class VisionEncoder:
    """One loaded model. Thread-safe: a lock serialises forward passes (torch already uses every core)."""

    def __init__(self, info: VisionModelInfo, device: str = "cpu") -> None:
        # The checkpoint is on disk; make sure no library tries a model hub for anything else.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # "torchvision is not installed, using the PIL processor" is expected: quiet.
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        started = time.monotonic()
        self.info = info
        self.device = device
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        model = AutoModel.from_pretrained(str(info.path), local_files_only=True, use_safetensors=True, dtype=self.dtype)
        self.model = model.to(device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            str(info.path), local_files_only=True
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(info.path), local_files_only=True)
        text_config = getattr(self.model.config, "text_config", None)
        self.max_text_tokens = int(getattr(text_config, "max_position_embeddings", 64) or 64)
        self._lock = threading.Lock()
        log.info(
            "vision model loaded",
            extra={
                "model": info.name,
                "family": info.family,
                "device": device,
                "dtype": str(self.dtype),
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> NDArray[np.float32]:
        """(n, dimensions) unit vectors of `images` (RGB, as `prepare_image` gives them)."""
        import torch

        out = np.zeros((len(images), self.info.dimensions), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = list(images[start : start + batch_size])
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            with self._lock, torch.inference_mode():
                features = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))
            out[start : start + len(batch)] = features.float().cpu().numpy()
        return _normalised(out)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        """(n, dimensions) unit vectors of `texts`, through the text tower (truncated to its window)."""
        import torch

        out = np.zeros((len(texts), self.info.dimensions), dtype=np.float32)
        # SigLIP was trained on text padded to its full window; CLIP pools at the end token, so any padding works.
        padding = "max_length" if self.info.family == "siglip" else True
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            tokens = self.tokenizer(
                batch, padding=padding, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
            )
            inputs = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            if self.info.family == "siglip":
                inputs.pop("attention_mask", None)  # SigLIP's text tower attends to its padding, as trained
            with self._lock, torch.inference_mode():
                features = _features(self.model.get_text_features(**inputs))
            out[start : start + len(batch)] = features.float().cpu().numpy()
        return _normalised(out)


def load_encoder(info: VisionModelInfo, device: str = "cpu") -> VisionEncoder:
    """The process's encoder for this model and device, loaded on first use; new files mean a new load."""
    key = f"vision:{info.path}:{info.fingerprint}:{device}"
    encoder: VisionEncoder = ModelCache.get(key, lambda: VisionEncoder(info, device))
    return encoder
