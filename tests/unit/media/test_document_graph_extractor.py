"""document_graph_extractor on a made PDF: blocks by kind, boxes, a scanned page, blobs, broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractorInput, RowResult
from strataflow.extractors.pdf import DOCUMENT_GRAPH_EXTRACTOR, DocumentGraphParams, confidence_tag
from tests import media_factory as mf
from tests.unit.media.conftest import Media


@pytest.fixture(scope="module")
def report(media: Media, tmp_path_factory: pytest.TempPathFactory) -> RowResult:
    context = ExtractContext(work_dir=tmp_path_factory.mktemp("pdf-work"))
    [result] = DOCUMENT_GRAPH_EXTRACTOR.extract(
        [ExtractorInput("r", {"pdf": media.pdf})], DocumentGraphParams(), context
    )
    assert result.error is None, result.error and result.error.message
    return result


def by_page(result: RowResult, page: int) -> list[dict]:  # type: ignore[type-arg]
    return [d.fields for d in result.documents if d.fields["page_number"] == page]


def test_text_page_becomes_header_paragraphs_table_and_figure(report: RowResult) -> None:
    blocks = by_page(report, 0)
    assert [b["object_type"] for b in blocks] == ["header", "paragraph", "paragraph", "table", "figure"]
    assert blocks[0]["text"] == "Annual Lighthouse Survey"
    assert blocks[1]["text"].startswith("The northern lighthouse was inspected")
    assert blocks[1]["text"].endswith("visible for twenty miles.")
    assert blocks[2]["text"].startswith("Funding for the southern station")
    assert blocks[3]["text"].splitlines() == [
        "Station\tKeeper\tVisits",
        "North Point\tMorgan\t12",
        "South Cape\tAlvarez\t7",
    ]
    assert "Keeper visits per year" in blocks[4]["text"]  # text inside the picture, by OCR
    assert [b["block_index"] for b in blocks] == [0, 1, 2, 3, 4]
    assert all(b["text_source"] == "text_layer" for b in blocks[:4])


def test_boxes_are_points_from_the_top_left(report: RowResult) -> None:
    header, first, _, table, figure = by_page(report, 0)
    assert header["bbox"]["x"] == pytest.approx(72, abs=1)
    assert header["bbox"]["y"] == pytest.approx(72, abs=5)  # written at top=72
    assert first["bbox"]["y"] == pytest.approx(110, abs=5)
    assert first["bbox"]["height"] == pytest.approx(25, abs=6)  # two 11 pt lines
    assert table["bbox"]["width"] > 350  # spans all three columns
    assert figure["bbox"] == pytest.approx({"x": 72, "y": 340, "width": 300, "height": 100}, abs=1)
    assert header["page_width"] == 612 and header["page_height"] == 792


def test_a_scanned_page_is_read_by_ocr(report: RowResult) -> None:
    [scan] = by_page(report, 1)
    assert scan["text"].splitlines() == ["Scanned invoice number 4471", "Payment received with thanks."]
    assert scan["text_source"] == "ocr"
    assert 0.5 < scan["confidence_score"] <= 1.0
    assert scan["bbox"]["x"] == pytest.approx(150 * 72 / 150, abs=4)  # drawn at x=150 px on a 150 dpi scan


def test_every_block_has_a_page_image_a_crop_and_an_embedding(report: RowResult) -> None:
    for document in report.documents:
        blobs = {b.field: b.path for b in document.blobs}
        with Image.open(blobs["page_image_url"]) as page:
            assert page.size == pytest.approx((1275, 1650), abs=1)  # Letter at 150 dpi
        with Image.open(blobs["segment_thumbnail_url"]) as crop:
            assert crop.width < 612
        assert len(document.vectors["text_embedding"]) == 384
        assert document.position == {
            "page_number": document.fields["page_number"],
            "block_index": document.fields["block_index"],
        }


def test_short_prose_is_dropped_but_headers_are_kept(media: Media, context: ExtractContext) -> None:
    params = DocumentGraphParams(
        min_text_length=200, run_ocr=False, generate_thumbnails=False, store_page_images=False, run_text_embedding=False
    )
    [result] = DOCUMENT_GRAPH_EXTRACTOR.extract([ExtractorInput("r", {"pdf": media.pdf})], params, context)
    kinds = [d.fields["object_type"] for d in result.documents]
    assert kinds == ["header", "table", "figure"]  # without OCR, the scanned page yields nothing
    assert all(not d.blobs and not d.vectors for d in result.documents)
    assert mf.files_under(context.work_dir) == set()


def test_broken_pdfs_fail_their_rows_only(media: Media, context: ExtractContext) -> None:
    rows = [
        ExtractorInput("png", {"pdf": media.png_as_pdf}),
        ExtractorInput("empty", {"pdf": media.empty}),
        ExtractorInput("truncated", {"pdf": media.truncated_pdf}),
        ExtractorInput("good", {"pdf": media.pdf}),
    ]
    params = DocumentGraphParams(run_ocr=False)
    results = {r.row_id: r for r in DOCUMENT_GRAPH_EXTRACTOR.extract(rows, params, context)}
    assert results["good"].error is None and results["good"].documents
    for row_id in ("png", "empty", "truncated"):
        error = results[row_id].error
        assert error is not None and error.category is ErrorCategory.VALIDATION, row_id
    assert "not a PDF" in results["png"].error.message  # type: ignore[union-attr]


def test_confidence_tags() -> None:
    assert [confidence_tag(s) for s in (1.0, 0.9, 0.8, 0.6, 0.2)] == ["A", "A", "B", "C", "D"]


def test_declared_outputs(tmp_path: Path) -> None:
    [spec] = DOCUMENT_GRAPH_EXTRACTOR.vector_indexes(DocumentGraphParams())
    assert (spec.name, spec.dimensions, spec.model) == ("text_embedding", 384, "all-MiniLM-L6-v2")
    assert DOCUMENT_GRAPH_EXTRACTOR.position_fields() == ["page_number", "block_index"]
    names = {f.name for f in DOCUMENT_GRAPH_EXTRACTOR.output_fields(DocumentGraphParams())}
    assert {"text", "object_type", "page_number", "bbox", "page_image_url", "segment_thumbnail_url"} <= names
