"""OpenCLIP checkpoints in OpenCLIP's own layout, converted to a `transformers` CLIP folder at import.

The `open-clip-torch` package cannot be installed beside this project's CPU torch (its
torchvision pulls a CUDA build), so OpenCLIP's own code never runs here. A standard OpenCLIP
ViT model (the OpenAI-style architecture most OpenCLIP checkpoints use) has the same
computation as transformers' CLIPModel; `models import` rewrites its weights into that layout
once, and everything after reads an ordinary CLIP folder.

What is read: `open_clip_config.json` (`model_cfg`: embed_dim, quick_gelu, vision_cfg, text_cfg;
`preprocess_cfg`: mean, std), the weights as `open_clip_model.safetensors` (or, read with
torch's weights-only loader, `open_clip_pytorch_model.bin`), and the tokenizer, which OpenCLIP
checkpoints do not carry: `tokenizer.json` or `vocab.json` + `merges.txt` of the same BPE must be
put beside them. Other OpenCLIP architectures (timm or Hugging Face towers, ResNets, attention
pooling, SigLIP in OpenCLIP layout) are refused with a message saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from strataflow.extractors.vision.catalog import ModelFormatError

CONFIG = "open_clip_config.json"
WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
UNSUPPORTED = ("timm_model_name", "hf_model_name", "attentional_pool", "attn_pooler_heads", "no_ln_pre")


def is_openclip_folder(path: Path) -> bool:
    return (path / CONFIG).is_file() and not (path / "config.json").is_file()


def _model_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{CONFIG} is unreadable ({exc})") from None
    model = config.get("model_cfg") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise ModelFormatError(f"{CONFIG} has no model_cfg")
    vision, text = model.get("vision_cfg") or {}, model.get("text_cfg") or {}
    odd = [k for k in UNSUPPORTED if vision.get(k) or text.get(k)]
    if odd or not isinstance(vision.get("layers", 12), int) or vision.get("pool_type", "tok") != "tok":
        raise ModelFormatError(
            "only OpenCLIP's standard ViT architecture converts (this one uses "
            f"{', '.join(odd) or 'a ResNet image tower or another pooling'}); "
            "use its transformers release if it has one"
        )
    return {"model": model, "preprocess": config.get("preprocess_cfg") or {}}


def _state_dict(path: Path) -> dict[str, Any]:
    import torch

    if (path / WEIGHTS[0]).is_file():
        from safetensors.torch import load_file

        state: dict[str, Any] = load_file(str(path / WEIGHTS[0]))
    elif (path / WEIGHTS[1]).is_file():
        loaded = torch.load(str(path / WEIGHTS[1]), map_location="cpu", weights_only=True)
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else {}
    else:
        raise ModelFormatError(f"no OpenCLIP weights ({' or '.join(WEIGHTS)})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _layer(prefix: str, target: str, state: dict[str, Any], out: dict[str, Any]) -> None:
    """One residual block: fused q/k/v split in three, OpenCLIP's names to transformers' names."""
    q, k, v = state[f"{prefix}.attn.in_proj_weight"].chunk(3, dim=0)
    qb, kb, vb = state[f"{prefix}.attn.in_proj_bias"].chunk(3, dim=0)
    out.update(
        {
            f"{target}.self_attn.q_proj.weight": q,
            f"{target}.self_attn.k_proj.weight": k,
            f"{target}.self_attn.v_proj.weight": v,
            f"{target}.self_attn.q_proj.bias": qb,
            f"{target}.self_attn.k_proj.bias": kb,
            f"{target}.self_attn.v_proj.bias": vb,
        }
    )
    renames = {
        "attn.out_proj": "self_attn.out_proj",
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    for source, name in renames.items():
        for part in ("weight", "bias"):
            out[f"{target}.{name}.{part}"] = state[f"{prefix}.{source}.{part}"]


def _convert_weights(state: dict[str, Any], vision_layers: int, text_layers: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "visual_projection.weight": state["visual.proj"].T.contiguous(),
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_projection.weight": state["text_projection"].T.contiguous(),
        "logit_scale": state["logit_scale"],
    }
    for part in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{part}"] = state[f"visual.ln_pre.{part}"]
        out[f"vision_model.post_layernorm.{part}"] = state[f"visual.ln_post.{part}"]
        out[f"text_model.final_layer_norm.{part}"] = state[f"ln_final.{part}"]
    for index in range(vision_layers):
        _layer(f"visual.transformer.resblocks.{index}", f"vision_model.encoder.layers.{index}", state, out)
    for index in range(text_layers):
        _layer(f"transformer.resblocks.{index}", f"text_model.encoder.layers.{index}", state, out)
    return out


def convert(source: Path, target: Path) -> None:
    """Write a transformers CLIP folder in `target` from the OpenCLIP checkpoint in `source`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    read = _model_config(source)
    model_cfg, preprocess = read["model"], read["preprocess"]
    vision, text = model_cfg.get("vision_cfg") or {}, model_cfg.get("text_cfg") or {}
    tokenizer_files = [source / "vocab.json", source / "merges.txt"]
    if not all(f.is_file() for f in tokenizer_files):
        raise ModelFormatError(
            "OpenCLIP checkpoints carry no tokenizer: put the model's vocab.json and merges.txt (CLIP's BPE) beside it"
        )
    tokenizer = CLIPTokenizer(str(tokenizer_files[0]), str(tokenizer_files[1]))
    end, start = tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|startoftext|>")
    width, text_width = int(vision.get("width", 768)), int(text.get("width", 512))
    vision_layers, text_layers = int(vision.get("layers", 12)), int(text.get("layers", 12))
    side = int(vision.get("image_size", 224))
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    config = CLIPConfig(
        projection_dim=int(model_cfg.get("embed_dim", 512)),
        vision_config={
            "hidden_size": width,
            "intermediate_size": int(width * float(vision.get("mlp_ratio", 4.0))),
            "num_hidden_layers": vision_layers,
            "num_attention_heads": width // int(vision.get("head_width", 64)),
            "image_size": side,
            "patch_size": int(vision.get("patch_size", 16)),
            "hidden_act": act,
        },
        text_config={
            "vocab_size": int(text.get("vocab_size", 49408)),
            "hidden_size": text_width,
            "intermediate_size": int(text_width * float(text.get("mlp_ratio", 4.0))),
            "num_hidden_layers": text_layers,
            "num_attention_heads": int(text.get("heads", 8)),
            "max_position_embeddings": int(text.get("context_length", 77)),
            "hidden_act": act,
            "bos_token_id": start,
            "eos_token_id": end,
            "pad_token_id": end,
        },
    )
    state = _state_dict(source)
    try:
        weights = _convert_weights(state, vision_layers, text_layers)
    except KeyError as exc:
        raise ModelFormatError(f"the OpenCLIP weights lack {exc}: not the standard ViT layout") from None
    model: Any = CLIPModel(config)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise ModelFormatError(f"the OpenCLIP weights do not fit the declared shapes: {exc}") from None
    missing = [k for k in missing if not k.endswith("position_ids")]  # a constant buffer, not a weight
    if missing or unexpected:
        raise ModelFormatError(
            f"the OpenCLIP weights do not match the model: missing {missing[:3]}, extra {unexpected[:3]}"
        )
    processor: Any = CLIPProcessor(  # type: ignore[no-untyped-call]
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": side},
            crop_size={"height": side, "width": side},
            image_mean=list(preprocess.get("mean") or OPENAI_MEAN),
            image_std=list(preprocess.get("std") or OPENAI_STD),
        ),
        tokenizer=tokenizer,
    )
    target.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(target))
    processor.save_pretrained(str(target))
    shutil.copyfile(source / CONFIG, target / CONFIG)  # kept for the record: where the model came from
