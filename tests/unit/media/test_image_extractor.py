"""image_extractor on real images: OCR, EXIF, text search, look-alikes, near-duplicates, broken files."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractedDocument, ExtractorInput
from strataflow.extractors.image import IMAGE_EXTRACTOR, ImageParams
from strataflow.extractors.text_models import embed_texts
from tests import media_factory as mf
from tests.unit.media.conftest import Media

ORIENTATION, DESCRIPTION = 0x0112, 0x010E


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    sign = mf.text_image("Lighthouse tours daily", size=(800, 240), background=(250, 245, 220))
    exif = sign.getexif()
    exif[DESCRIPTION] = "Harbour noticeboard"
    exif[ORIENTATION] = 6  # stored sideways: the camera was turned, readers must rotate it back
    sign.rotate(90, expand=True).save(root / "sign.jpg", quality=92, exif=exif)
    cake = mf.text_image("Chocolate cake recipe", size=(800, 240), background=(240, 220, 230))
    cake.save(root / "cake.png")
    # The same picture, smaller and recompressed: a near-duplicate.
    buffer = io.BytesIO()
    cake.resize((400, 120)).save(buffer, format="JPEG", quality=60)
    (root / "cake-copy.jpg").write_bytes(buffer.getvalue())
    stripes = np.zeros((240, 800, 3), dtype=np.uint8)
    stripes[:, ::20] = (20, 120, 30)
    Image.fromarray(stripes).save(root / "stripes.png")
    return {p.stem: p for p in root.iterdir()}


@pytest.fixture(scope="module")
def documents(images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExtractedDocument]:
    rows = [ExtractorInput(name, {"image": path}) for name, path in images.items()]
    context = ExtractContext(work_dir=tmp_path_factory.mktemp("image-work"))
    results = IMAGE_EXTRACTOR.extract(rows, ImageParams(), context)
    assert all(r.error is None for r in results)
    return {r.row_id: r.documents[0] for r in results}


def cosine(a: list[float], b: list[float] | np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_orientation_size_exif_and_thumbnail(documents: dict[str, ExtractedDocument]) -> None:
    sign = documents["sign"]
    assert (sign.fields["width"], sign.fields["height"]) == (800, 240)  # upright again
    assert sign.fields["format"] == "JPEG"
    assert sign.fields["exif"]["ImageDescription"] == "Harbour noticeboard"
    [thumbnail] = sign.blobs
    assert thumbnail.field == "thumbnail_url" and thumbnail.role == "thumbnail"
    with Image.open(thumbnail.path) as image:
        assert max(image.size) == 256


def test_ocr_reads_the_words_and_the_text_embedding_finds_them(documents: dict[str, ExtractedDocument]) -> None:
    assert documents["sign"].fields["ocr_text"] == "Lighthouse tours daily"
    assert "Harbour noticeboard" in documents["sign"].fields["text"]
    assert documents["cake"].fields["ocr_text"] == "Chocolate cake recipe"
    query = embed_texts(["how to bake a dessert"])[0]
    assert cosine(documents["cake"].vectors["text_embedding"], query) > cosine(
        documents["sign"].vectors["text_embedding"], query
    )
    assert "text_embedding" not in documents["stripes"].vectors  # no text, no text vector
    assert len(documents["cake"].vectors["text_embedding"]) == 384


def test_near_duplicates_by_hash_and_look_alikes_by_descriptor(documents: dict[str, ExtractedDocument]) -> None:
    def distance(a: str, b: str) -> int:
        return imagehash.hex_to_hash(documents[a].fields["perceptual_hash"]) - imagehash.hex_to_hash(
            documents[b].fields["perceptual_hash"]
        )

    assert distance("cake", "cake-copy") <= 6
    assert distance("cake", "stripes") > 20
    cake = documents["cake"].vectors["visual_descriptor"]
    assert len(cake) == 128
    assert cosine(cake, documents["cake-copy"].vectors["visual_descriptor"]) > cosine(
        cake, documents["stripes"].vectors["visual_descriptor"]
    )


def test_broken_images_fail_their_rows_only(media: Media, images: dict[str, Path], context: ExtractContext) -> None:
    truncated = mf.truncate(images["sign"], context.work_dir.parent / "half.jpg", keep_fraction=0.5)
    rows = [
        ExtractorInput("empty", {"image": media.empty}),
        ExtractorInput("video", {"image": media.video}),
        ExtractorInput("half", {"image": truncated}),
        ExtractorInput("good", {"image": images["cake"]}),
    ]
    results = {r.row_id: r for r in IMAGE_EXTRACTOR.extract(rows, ImageParams(run_ocr=False), context)}
    assert results["good"].error is None and len(results["good"].documents) == 1
    for row_id in ("empty", "video", "half"):
        error = results[row_id].error
        assert error is not None and error.category is ErrorCategory.VALIDATION, row_id
    assert "truncated" in results["half"].error.message  # type: ignore[union-attr]
    referenced = {b.path.resolve() for b in results["good"].documents[0].blobs}
    assert mf.files_under(context.work_dir) == referenced


def test_vector_indexes_are_honestly_named() -> None:
    specs = {s.name: s for s in IMAGE_EXTRACTOR.vector_indexes(ImageParams())}
    assert set(specs) == {"text_embedding", "visual_descriptor"}
    assert specs["text_embedding"].dimensions == 384
    assert specs["visual_descriptor"].dimensions == 128
    assert "not a semantic embedding" in specs["visual_descriptor"].description
