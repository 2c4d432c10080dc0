"""Vision models on tiny random CLIP/SigLIP checkpoints: catalogue, loading, batching, extraction.

The checkpoints have random weights (tests/vision_factory.py): these tests show the plumbing
(formats, shapes, batching, determinism, which vector lands where), never semantic quality.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractorInput
from strataflow.extractors.image import IMAGE_EXTRACTOR, ImageParams
from strataflow.extractors.limits import ExtractionLimits
from strataflow.extractors.multimodal import MULTIMODAL_EXTRACTOR, MultimodalParams
from strataflow.extractors.vision import catalog
from strataflow.extractors.vision.encoder import VisionEncoder, load_encoder, prepare_image
from strataflow.extractors.vision.importing import ImportFailed, import_model
from tests import vision_factory as vf
from tests.unit.media.conftest import Media

FAST = {"run_ocr": False, "run_text_embedding": False, "run_perceptual_hash": False, "enable_thumbnails": False}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vision-models")
    vf.make_clip(root / "tiny-clip")
    vf.make_siglip(root / "tiny-siglip")
    (root / "whisper-base").mkdir()  # another kind of model folder: not a vision model, not a problem
    (root / "whisper-base" / "model.bin").write_bytes(b"x")
    (root / "whisper-base" / "config.json").write_text('{"alignment_heads": [], "suppress_ids": []}')
    broken = root / "half-copied"
    broken.mkdir()
    shutil.copy(root / "tiny-clip" / "config.json", broken / "config.json")
    return root


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return vf.coloured_images(tmp_path_factory.mktemp("pictures"), 5)


def _context(tmp_path: Path, models: Path, batch: int = 2) -> ExtractContext:
    return ExtractContext(
        work_dir=tmp_path / "work", models_dir=models, limits=ExtractionLimits(vision_batch_size=batch)
    )


def test_discovery_lists_models_with_dimensions_and_reports_broken_folders(models: Path) -> None:
    found = catalog.discover(models)
    by_name = {m.name: m for m in found.models}
    assert sorted(by_name) == ["tiny-clip", "tiny-siglip"]
    assert (by_name["tiny-clip"].family, by_name["tiny-clip"].dimensions, by_name["tiny-clip"].image_size) == (
        "clip",
        16,
        32,
    )
    assert (by_name["tiny-siglip"].family, by_name["tiny-siglip"].dimensions) == ("siglip", 24)
    assert by_name["tiny-clip"].feature_name == "vision_tiny_clip"
    assert "safetensors" in found.problems["half-copied"]
    assert "whisper-base" not in found.problems


def test_missing_model_is_a_400_that_says_how_to_install(models: Path) -> None:
    with pytest.raises(catalog.ModelNotInstalledError) as caught:
        catalog.find_model(models, "clip-vit-b-32")
    assert caught.value.status_code == 400
    assert "clip-vit-b-32" in caught.value.message and "strataflow models import" in caught.value.message
    assert caught.value.details == {"model": "clip-vit-b-32", "installed": ["tiny-clip", "tiny-siglip"]}
    with pytest.raises(catalog.ModelNotInstalledError, match="unusable"):
        catalog.find_model(models, "half-copied")


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-siglip"])
def test_encoders_give_unit_vectors_of_the_declared_size_and_batching_changes_nothing(
    models: Path, pictures: list[Path], name: str
) -> None:
    info = catalog.find_model(models, name)
    encoder = load_encoder(info)
    assert load_encoder(info) is encoder  # loaded once per process
    images = [prepare_image(Image.open(p)) for p in pictures]
    one_batch = encoder.encode_images(images, batch_size=16)
    small_batches = encoder.encode_images(images, batch_size=2)
    assert one_batch.shape == (5, info.dimensions) and one_batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(one_batch, axis=1), 1.0, atol=1e-5)
    assert np.allclose(one_batch, small_batches, atol=1e-5)
    texts = encoder.encode_texts(["a red boat", "the sea", "a dog"])
    assert texts.shape == (3, info.dimensions)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])


def test_saved_then_loaded_model_gives_identical_vectors(tmp_path: Path, pictures: list[Path]) -> None:
    """The model as built in memory, and the same model read back from its files by the encoder, agree."""
    import torch
    from transformers import AutoImageProcessor

    built: list[object] = []
    folder = vf.make_clip(tmp_path / "roundtrip", seed=3, keep=built)
    processor = AutoImageProcessor.from_pretrained(str(folder))
    image = prepare_image(Image.open(pictures[0]))
    with torch.inference_mode():
        output = built[0].get_image_features(**processor(images=[image], return_tensors="pt"))  # type: ignore[attr-defined]
    reference = getattr(output, "pooler_output", output)[0].numpy()
    reference = reference / np.linalg.norm(reference)
    loaded = VisionEncoder(catalog.inspect_folder(folder), "cpu").encode_images([image])[0]
    assert np.allclose(loaded, reference, atol=1e-6)
    again = VisionEncoder(catalog.inspect_folder(folder), "cpu").encode_images([image])[0]
    assert np.array_equal(loaded, again)


def test_image_extractor_adds_the_model_feature_and_an_image_finds_itself(
    tmp_path: Path, models: Path, pictures: list[Path]
) -> None:
    params = ImageParams(vision_model="tiny-clip", **FAST)
    rows = [ExtractorInput(p.stem, {"image": p}) for p in pictures]
    results = IMAGE_EXTRACTOR.extract(rows, params, _context(tmp_path, models, batch=2))
    assert all(r.error is None for r in results), [r.error for r in results]
    vectors = np.array([r.documents[0].vectors["vision_tiny_clip"] for r in results])
    assert vectors.shape == (5, 16)
    assert "visual_descriptor" in results[0].documents[0].vectors  # what it had before stays
    # Each picture, embedded again on its own, is nearest to its own stored vector.
    encoder = load_encoder(catalog.find_model(models, "tiny-clip"))
    for index, path in enumerate(pictures):
        query = encoder.encode_images([prepare_image(Image.open(path))])[0]
        assert int(np.argmax(vectors @ query)) == index


def test_image_extractor_with_an_absent_model_fails_rows_as_a_dependency(
    tmp_path: Path, models: Path, pictures: list[Path]
) -> None:
    params = ImageParams(vision_model="gone", **FAST)
    results = IMAGE_EXTRACTOR.extract([ExtractorInput("a", {"image": pictures[0]})], params, _context(tmp_path, models))
    assert results[0].error is not None and results[0].error.category == ErrorCategory.DEPENDENCY
    assert "gone" in results[0].error.message


def test_vector_specs_follow_the_parameter_and_the_catalogue(models: Path) -> None:
    catalog.configure(models, None)
    try:
        [spec, *_] = IMAGE_EXTRACTOR.vector_indexes(ImageParams(vision_model="tiny-siglip"))
        assert (spec.name, spec.dimensions, spec.model) == ("vision_tiny_siglip", 24, "vision:tiny-siglip")
        assert not any(s.name.startswith("vision_") for s in IMAGE_EXTRACTOR.vector_indexes(ImageParams()))
        assert {"vision_tiny_clip", "vision_tiny_siglip"} <= {s.name for s in IMAGE_EXTRACTOR.possible_vector_indexes()}
        with pytest.raises(catalog.ModelNotInstalledError):
            MULTIMODAL_EXTRACTOR.vector_indexes(MultimodalParams(vision_model="absent"))
        completed = IMAGE_EXTRACTOR.complete_parameters(ImageParams(), {"model": "tiny-clip"})
        assert completed.vision_model == "tiny-clip"
        assert IMAGE_EXTRACTOR.complete_parameters(ImageParams(vision_model="none"), {"model": "x"}).vision_model == (
            "none"
        )
        catalog.configure(models, "tiny-siglip")  # the operator's default
        assert IMAGE_EXTRACTOR.complete_parameters(ImageParams(), None).vision_model == "tiny-siglip"
    finally:
        catalog.configure(Path("/nonexistent-models"), None)


def test_video_segments_get_keyframe_vectors_with_their_times(tmp_path: Path, models: Path, media: Media) -> None:
    params = MultimodalParams(
        split_method="time",
        time_split_interval=2.0,
        store_segments=False,
        enable_thumbnails=False,
        run_visual_descriptor=False,
        vision_model="tiny-clip",
    )
    [result] = MULTIMODAL_EXTRACTOR.extract(
        [ExtractorInput("video", {"video": media.silent_video})], params, _context(tmp_path, models, batch=3)
    )
    assert result.error is None, result.error
    times = [(d.fields["start_time"], d.fields["end_time"]) for d in result.documents]
    assert times == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    vectors = np.array([d.vectors["vision_tiny_clip"] for d in result.documents])
    assert vectors.shape == (4, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 4  # four different shots, four different vectors


def test_import_copies_verifies_and_refuses_what_is_not_a_model(tmp_path: Path, models: Path) -> None:
    target = tmp_path / "installed"
    info = import_model(models / "tiny-clip", target, "clip-b")
    assert (info.name, info.dimensions) == ("clip-b", 16)
    assert (target / "clip-b" / "model.safetensors").is_file()
    assert [m.name for m in catalog.discover(target).models] == ["clip-b"]
    with pytest.raises(ImportFailed, match="already installed"):
        import_model(models / "tiny-clip", target, "clip-b")
    with pytest.raises(ImportFailed, match="safetensors"):
        import_model(models / "half-copied", target, "half")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(models / "tiny-clip", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ImportFailed, match="does not load"):
        import_model(corrupt, target, "corrupt")
    assert sorted(p.name for p in target.iterdir()) == ["clip-b"]  # nothing half-imported is left behind


def test_openclip_checkpoint_is_converted_and_gives_the_same_vectors(
    tmp_path: Path, models: Path, pictures: list[Path]
) -> None:
    """The tiny CLIP rewritten in OpenCLIP's layout imports as a CLIP folder whose vectors equal the original's."""
    source = vf.to_openclip(models / "tiny-clip", tmp_path / "open-clip-tiny")
    installed = tmp_path / "installed"
    info = import_model(source, installed, "from-openclip")
    assert (info.family, info.dimensions) == ("clip", 16)
    converted = VisionEncoder(info, "cpu")
    original = load_encoder(catalog.find_model(models, "tiny-clip"))
    images = [prepare_image(Image.open(p)) for p in pictures[:3]]
    assert np.allclose(converted.encode_images(images), original.encode_images(images), atol=1e-5)
    texts = ["a red boat", "blue sea"]
    assert np.allclose(converted.encode_texts(texts), original.encode_texts(texts), atol=1e-5)
    (source / "vocab.json").unlink()
    with pytest.raises(ImportFailed, match="no tokenizer"):
        import_model(source, installed, "no-vocab")
