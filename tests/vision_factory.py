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


def to_openclip(hf_folder: Path, folder: Path) -> Path:
    """Rewrite a tiny CLIP checkpoint made by `make_clip` in OpenCLIP's own layout (open_clip_config.json,
    open_clip_model.safetensors, plus CLIP's vocab.json/merges.txt, which OpenCLIP checkpoints lack).

    `open-clip-torch` cannot be installed here, so this is written from OpenCLIP's documented state-dict
    names (visual.conv1, resblocks with fused in_proj, visual.proj as width x embed_dim, ...)."""
    import torch
    from safetensors.torch import load_file, save_file

    hf = load_file(str(hf_folder / "model.safetensors"))
    config = json.loads((hf_folder / "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    out: dict[str, torch.Tensor] = {
        "visual.conv1.weight": hf["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": hf["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": hf["vision_model.embeddings.position_embedding.weight"],
        "visual.proj": hf["visual_projection.weight"].T.contiguous(),
        "token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
        "text_projection": hf["text_projection.weight"].T.contiguous(),
        "logit_scale": hf["logit_scale"],
    }
    for part in ("weight", "bias"):
        out[f"visual.ln_pre.{part}"] = hf[f"vision_model.pre_layrnorm.{part}"]
        out[f"visual.ln_post.{part}"] = hf[f"vision_model.post_layernorm.{part}"]
        out[f"ln_final.{part}"] = hf[f"text_model.final_layer_norm.{part}"]
    names = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2"}
    names.update({"mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"})
    for tower, prefix, layers in (
        ("vision_model", "visual.transformer", vision["num_hidden_layers"]),
        ("text_model", "transformer", text["num_hidden_layers"]),
    ):
        for i in range(layers):
            source, target = f"{tower}.encoder.layers.{i}", f"{prefix}.resblocks.{i}"
            for part in ("weight", "bias"):
                fused = [hf[f"{source}.self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")]
                out[f"{target}.attn.in_proj_{part}"] = torch.cat(fused, dim=0)
                for open_name, hf_name in names.items():
                    out[f"{target}.{open_name}.{part}"] = hf[f"{source}.{hf_name}.{part}"]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(out, str(folder / "open_clip_model.safetensors"))
    model_cfg = {
        "embed_dim": config["projection_dim"],
        "quick_gelu": vision.get("hidden_act", "quick_gelu") == "quick_gelu",
        "vision_cfg": {
            "image_size": vision["image_size"],
            "layers": vision["num_hidden_layers"],
            "width": vision["hidden_size"],
            "head_width": vision["hidden_size"] // vision["num_attention_heads"],
            "mlp_ratio": vision["intermediate_size"] / vision["hidden_size"],
            "patch_size": vision["patch_size"],
        },
        "text_cfg": {
            "context_length": text["max_position_embeddings"],
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "heads": text["num_attention_heads"],
            "layers": text["num_hidden_layers"],
            "mlp_ratio": text["intermediate_size"] / text["hidden_size"],
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    vocab = hf_folder.parent / f".{hf_folder.name}-vocab"
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_bytes((vocab / name).read_bytes())
    return folder
