"""Vision model throughput: images/s and keyframes/s through the extractors against the raw model.

    python bench/vision.py [--model PATH] [--size base|tiny] [--images 64] [--batch 32] [--device cpu|cuda]

No real checkpoint ships with the project, so by default the model is a CLIP with the shape
of ViT-B/32 (`--size base`: 88M image-tower parameters, 224-pixel input, 512 dimensions) and
random weights, saved as a Hugging Face folder: its cost per image is a real ViT-B/32's, its
vectors mean nothing (throughput only). `--model PATH` measures an operator's checkpoint.

In one process, on the same inputs, after a warm-up:
  raw        what a plain script does with transformers: open each file with Pillow, convert to RGB,
             image processor + get_image_features in batches of --batch (images/s); nothing of ours.
  extractor  IMAGE_EXTRACTOR.extract on the image files, every other feature off: decoding, EXIF
             orientation, the shrink before batching, batching, the forward pass (images/s).
  keyframes  MULTIMODAL_EXTRACTOR.extract on a video cut every second, every other feature off:
             decoding, cutting, keyframes, their embedding (keyframes/s), against the raw model
             on the same number of frames of the video's size.
The ratio extractor/raw is the share of the model's speed the extractor keeps (goal >= 0.8).
`--device cuda` runs both in float16 on the GPU. Writes bench/results/vision.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from figures import Figure, print_figures, write_results
from PIL import Image

from strataflow.extractors.base import ExtractContext, ExtractorInput
from strataflow.extractors.image import IMAGE_EXTRACTOR, ImageParams
from strataflow.extractors.limits import ExtractionLimits
from strataflow.extractors.multimodal import MULTIMODAL_EXTRACTOR, MultimodalParams
from strataflow.extractors.vision import catalog
from strataflow.extractors.vision.encoder import load_encoder

SIZES = {
    # ViT-B/32's shape (openai/clip-vit-base-patch32), text tower shrunk: only the image tower is timed.
    "base": {"hidden": 768, "layers": 12, "heads": 12, "patch": 32, "image": 224, "projection": 512},
    "tiny": {"hidden": 64, "layers": 2, "heads": 2, "patch": 8, "image": 32, "projection": 32},
}


def build_model(folder: Path, size: str) -> Path:
    """A CLIP of the given shape with random weights, saved as a Hugging Face checkpoint folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    shape = SIZES[size]
    vocab = {"!": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "eos_token_id": vocab["<|endoftext|>"],
            "bos_token_id": vocab["<|startoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": shape["hidden"],
            "intermediate_size": shape["hidden"] * 4,
            "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"],
            "image_size": shape["image"],
            "patch_size": shape["patch"],
        },
        projection_dim=shape["projection"],
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(str(folder))
    side = shape["image"]
    image_processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


def photographs(folder: Path, count: int) -> list[Path]:
    """Camera-sized JPEGs (1600 x 1200), smooth colour fields with noise, like photographs compress."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    ys, xs = np.mgrid[0:1200, 0:1600]
    for index in range(count):
        base = rng.integers(0, 256, size=3)
        field = (base + 60 * np.sin(xs / (40 + index))[..., None] + 40 * np.cos(ys / 70)[..., None]) % 256
        pixels = np.clip(field + rng.normal(0, 8, size=field.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{index:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=88)
        paths.append(path)
    return paths


def video(path: Path, seconds: int) -> Path:
    """An H.264 MP4 at 640 x 360, 25 fps, a new colour every second (one keyframe per 1 s segment)."""
    from fractions import Fraction

    import av

    rng = np.random.default_rng(9)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for second in range(seconds):
            picture = np.full((360, 640, 3), rng.integers(0, 256, size=3), dtype=np.uint8)
            for tick in range(25):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts, frame.time_base = second * 25 + tick, Fraction(1, 25)
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def raw_images_per_s(model_path: Path, images: list[Path] | list[Image.Image], batch: int, device: str) -> float:
    """transformers alone: Pillow decoding (for files), processor + get_image_features, batch by batch."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = AutoModel.from_pretrained(str(model_path), dtype=dtype).to(device).eval()
    processor = AutoImageProcessor.from_pretrained(str(model_path))

    def run(subset: list[Path] | list[Image.Image]) -> None:
        for start in range(0, len(subset), batch):
            chunk = [Image.open(i).convert("RGB") if isinstance(i, Path) else i for i in subset[start : start + batch]]
            pixels = processor(images=chunk, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                output = model.get_image_features(pixel_values=pixels.to(device, dtype))
            features = getattr(output, "pooler_output", output)
            features.float().cpu().numpy()

    run(images[:batch])  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    run(images)
    return len(images) / (time.perf_counter() - started)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    models = work / "models"
    model_path = args.model or build_model(models / "bench-clip", args.size)
    if args.model:
        models = args.model.parent
    info = catalog.inspect_folder(model_path)
    files = photographs(work / "photos", args.images)
    context = ExtractContext(
        work / "scratch",
        device=args.device,
        models_dir=models,
        limits=ExtractionLimits(vision_batch_size=args.batch),
    )
    off = {
        "run_ocr": False,
        "run_text_embedding": False,
        "run_visual_descriptor": False,
        "run_perceptual_hash": False,
        "enable_thumbnails": False,
    }
    params = ImageParams(vision_model=info.name, **off)
    rows = [ExtractorInput(p.stem, {"image": p}) for p in files]
    load_encoder(info, args.device)
    IMAGE_EXTRACTOR.extract(rows[: args.batch], params, context)  # warm-up: model loaded, first-call allocations

    def extractor_rate() -> float:
        started = time.perf_counter()
        results = IMAGE_EXTRACTOR.extract(rows, params, context)
        assert not any(r.failed for r in results), [r.error for r in results if r.error][:1]
        return len(files) / (time.perf_counter() - started)

    clip = video(work / "clip.mp4", args.video_seconds)
    segment_params = MultimodalParams(
        split_method="time",
        time_split_interval=1.0,
        store_segments=False,
        enable_thumbnails=False,
        run_visual_descriptor=False,
        vision_model=info.name,
    )
    keyframes = 0

    def keyframe_rate() -> float:
        nonlocal keyframes
        started = time.perf_counter()
        [segments] = MULTIMODAL_EXTRACTOR.extract([ExtractorInput("clip", {"video": clip})], segment_params, context)
        assert segments.error is None, segments.error
        keyframes = len(segments.documents)
        return keyframes / (time.perf_counter() - started)

    colours = np.random.default_rng(9)
    frames = [Image.new("RGB", (640, 360), tuple(int(x) for x in colours.integers(0, 256, 3))) for _ in range(64)]
    # The machine is shared: each figure and its baseline are measured in turn, twice, and the best of each kept.
    extractor, raw, keyframe, raw_frames = 0.0, 0.0, 0.0, 0.0
    for _round in range(args.rounds):
        raw = max(raw, raw_images_per_s(model_path, files, args.batch, args.device))
        extractor = max(extractor, extractor_rate())
        keyframe = max(keyframe, keyframe_rate())
        raw_frames = max(raw_frames, raw_images_per_s(model_path, frames[:keyframes], args.batch, args.device))
    return {
        "model": str(model_path) if args.model else f"random CLIP, {args.size} shape",
        "dimensions": info.dimensions,
        "device": args.device,
        "batch": args.batch,
        "images": len(files),
        "image_size": "1600x1200 JPEG",
        "rounds": args.rounds,
        "extractor_images_per_s": round(extractor, 2),
        "raw_images_per_s": round(raw, 2),
        "extractor_to_raw": round(extractor / raw, 3),
        "keyframes": keyframes,
        "keyframes_per_s": round(keyframe, 2),
        "raw_frames_per_s": round(raw_frames, 2),
        "keyframes_to_raw": round(keyframe / raw_frames, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, help="A CLIP/SigLIP checkpoint folder (default: a random one built here)."
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="base", help="Shape of the random model.")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--video-seconds", type=int, default=32, help="Video length; one keyframe per second.")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (float16) on a GPU machine.")
    parser.add_argument("--rounds", type=int, default=2, help="Each figure and baseline measured in turn, best kept.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        details = measure(args, Path(tmp))
    print(json.dumps(details, indent=2))
    same = f"the model alone (processor + forward pass), same inputs, {details['device']}"
    figures = [
        Figure(
            "vision_extractor_images_per_s",
            f"image_extractor with a vision model ({details['device']})",
            details["extractor_images_per_s"],
            "images/s",
            "higher",
            details["raw_images_per_s"],
            same,
        ),
        Figure(
            "vision_keyframes_per_s",
            f"multimodal_extractor keyframe embedding, 1 s segments ({details['device']})",
            details["keyframes_per_s"],
            "keyframes/s",
            "higher",
            details["raw_frames_per_s"],
            same,
            note="includes decoding and cutting the video",
        ),
    ]
    write_results("vision", figures, details)
    print_figures(figures)


if __name__ == "__main__":
    main()
