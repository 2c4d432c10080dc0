"""Tiny CLIP- and SigLIP-architecture checkpoints with random weights, built offline for the tests.

No real checkpoint can be had on these machines. These models have the real architectures
(transformers' CLIPModel / SiglipModel), are saved in the real on-disk format (config.json,
model.safetensors, image processor and tokenizer files) and go through the real loading, batching,
indexing and search code. Their vectors mean nothing: tests check shapes, determinism and that the
plumbing carries the right vector to the right place, never semantic quality.
"""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _clip_tokenizer(folder: Path) -> object:
    """A byte-level BPE vocabulary of single letters (no merges): every lower-case word tokenizes."""
    from transformers import CLIPTokenizer

    vocab = {"!": 0}
    for letter in LETTERS:
        vocab[letter] = len(vocab)
    for letter in LETTERS:
        vocab[letter + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def make_clip(
    folder: Path, seed: int = 0, projection_dim: int = 16, image_size: int = 32, keep: list[object] | None = None
) -> Path:
    """Save a tiny random CLIP checkpoint in `folder` (HF format) and return the folder; the model as
    built in memory is appended to `keep` when given."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer(folder.parent / f".{folder.name}-vocab")
    vocab_size = len(tokenizer.get_vocab())  # type: ignore[attr-defined]
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")  # type: ignore[attr-defined]
    start = tokenizer.convert_tokens_to_ids("<|startoftext|>")  # type: ignore[attr-defined]
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": start,
            "eos_token_id": end,
            "pad_token_id": end,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    if keep is not None:
        keep.append(model)
    return folder


def make_siglip(folder: Path, seed: int = 0, hidden: int = 24, image_size: int = 32) -> Path:
    """Save a tiny random SigLIP checkpoint (word-level tokenizer.json) in `folder`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in ["a", "red", "boat", "blue", "sea", "cat", "dog", "green", "sky", "photo", "of", "the"]:
        vocab[word] = len(vocab)
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=16
    )
    config = SiglipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": hidden,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": hidden,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
    )
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(str(folder))
    return folder


def coloured_images(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """`count` distinct PNGs: each a different colour pattern, so a random model tells them apart."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(7)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"image_{index:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
