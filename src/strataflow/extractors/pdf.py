"""`document_graph_extractor` v1: one document per layout block of a PDF.

Text pages are read from the PDF's own text layer (PDFium) and cut into
paragraph, header, list and table blocks by the geometric rules in
`media/pdf_layout.py`; embedded pictures become figure blocks; pages without a
text layer that are one big picture (scans) go through Tesseract. Every block
carries its page number (from 0), its box in points from the page's top-left
corner, a confidence, an embedding of its text (all-MiniLM-L6-v2), the
rendered page and a crop of the block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pypdfium2 as pdfium
from pydantic import Field

from strataflow.extractors.base import (
    ExtractContext,
    ExtractedDocument,
    Extractor,
    ExtractorInput,
    ExtractorParams,
    InputField,
    OutputField,
    Resources,
    RowResult,
    VectorIndexSpec,
)
from strataflow.extractors.media.failures import require_file
from strataflow.extractors.media.pdf_layout import Block, layout_blocks
from strataflow.extractors.media.pdf_pages import (
    crop_points,
    figure_blocks,
    image_boxes,
    is_scanned,
    ocr_page_blocks,
    open_pdf,
    render,
)
from strataflow.extractors.media.pdf_text import count_text_chars, page_runs
from strataflow.extractors.media.rows import blob, run_rows, stopped
from strataflow.extractors.text_models import TEXT_MODELS, embed_texts

_TEXT_MODEL = TEXT_MODELS["minilm"]
_ALWAYS_KEPT = ("header", "table", "figure")  # short by nature; min_text_length is for prose


class DocumentGraphParams(ExtractorParams):
    extractor_type: Literal["document_graph_extractor"] = "document_graph_extractor"
    vertical_threshold: float = Field(15.0, ge=1, le=100, description="Largest gap (points) inside a block.")
    horizontal_threshold: float = Field(50.0, ge=1, le=200, description="Gap (points) that separates cells.")
    min_text_length: int = Field(
        20, ge=1, le=500, description="Paragraph and list blocks shorter than this are dropped."
    )
    render_dpi: int = Field(150, ge=72, le=300, description="Resolution of the stored page images.")
    generate_thumbnails: bool = True
    thumbnail_dpi: int = Field(72, ge=36, le=150, description="Resolution of the block crops.")
    store_page_images: bool = True
    run_ocr: bool = Field(True, description="Read scanned pages and the text inside figures with Tesseract.")
    ocr_dpi: int = Field(300, ge=150, le=600)
    ocr_language: str = "eng"
    run_text_embedding: bool = True


class DocumentGraphExtractor(Extractor[DocumentGraphParams]):
    name: ClassVar[str] = "document_graph_extractor"
    version: ClassVar[str] = "v1"
    description: ClassVar[str] = (
        "One document per PDF layout block (paragraph, header, list, table, figure) with page number, box and "
        "text; scanned pages via Tesseract; page images and block crops; MiniLM text embedding per block."
    )
    params_model: ClassVar[type[ExtractorParams]] = DocumentGraphParams
    inputs: ClassVar[list[InputField]] = [InputField("pdf", "pdf", description="A PDF file.")]
    resources: ClassVar[Resources] = Resources(num_cpus=1.0, num_gpus=0.0, memory_mb=1536)

    def output_fields(self, params: DocumentGraphParams) -> list[OutputField]:
        fields = [
            OutputField("text", "text", "The block's text (table rows: tab-separated cells)."),
            OutputField("object_type", "string", "paragraph | header | list | table | figure"),
            OutputField("page_number", "integer", "Page, from 0."),
            OutputField("block_index", "integer", "Block on its page, in reading order, from 0."),
            OutputField("bbox", "object", "{x, y, width, height} in points from the page's top-left corner."),
            OutputField(
                "confidence_score", "float", "1.0 for the PDF's own text; Tesseract's mean word confidence for OCR."
            ),
            OutputField("confidence_tag", "string", "A (>= 0.9), B (>= 0.75), C (>= 0.5), D."),
            OutputField("text_source", "string", "text_layer or ocr."),
            OutputField("page_width", "float", "Points."),
            OutputField("page_height", "float", "Points."),
        ]
        if params.store_page_images:
            fields.append(OutputField("page_image_url", "image", "The whole page rendered at render_dpi."))
        if params.generate_thumbnails:
            fields.append(OutputField("segment_thumbnail_url", "image", "The block cropped from the page."))
        return fields

    def vector_indexes(self, params: DocumentGraphParams) -> list[VectorIndexSpec]:
        if not params.run_text_embedding:
            return []
        return [
            VectorIndexSpec(
                "text_embedding",
                _TEXT_MODEL.dimensions,
                _TEXT_MODEL.model_name,
                "Sentence embedding of the block's text",
            )
        ]

    def position_fields(self) -> list[str]:
        return ["page_number", "block_index"]

    def extract(
        self, rows: list[ExtractorInput], params: DocumentGraphParams, context: ExtractContext
    ) -> list[RowResult]:
        results = run_rows(rows, context, self.name, lambda row, scratch: _extract_pdf(row, params, context, scratch))
        _embed(results, params, context.device)
        return results


def _extract_pdf(
    row: ExtractorInput, params: DocumentGraphParams, context: ExtractContext, scratch: Path
) -> list[ExtractedDocument]:
    path = require_file(row.values.get("pdf"), "pdf")
    pdf = open_pdf(path)
    documents: list[ExtractedDocument] = []
    try:
        for page_number in range(len(pdf)):
            if context.should_stop():
                raise stopped()
            page = pdf[page_number]  # pages load one at a time: a long PDF never sits whole in memory
            try:
                documents += _page_documents(page, page_number, params, scratch, context.limits.pdf_page_max_pixels)
            finally:
                page.close()
    finally:
        pdf.close()
    return documents


def _page_documents(
    page: pdfium.PdfPage, page_number: int, params: DocumentGraphParams, scratch: Path, max_pixels: int
) -> list[ExtractedDocument]:
    textpage = page.get_textpage()
    try:
        images = image_boxes(page)
        scanned = is_scanned(page, count_text_chars(textpage), images)
        needs_render = params.store_page_images or params.generate_thumbnails or (params.run_ocr and images)
        page_render = render(page, params.render_dpi, max_pixels) if needs_render else None
        if scanned:
            blocks = ocr_page_blocks(page, params.ocr_dpi, params.ocr_language, max_pixels) if params.run_ocr else []
        else:
            runs = page_runs(page, textpage, params.horizontal_threshold)
            blocks = layout_blocks(runs, params.vertical_threshold, params.horizontal_threshold)
            blocks += figure_blocks(
                page, images, page_render, params.render_dpi, params.ocr_language if params.run_ocr else None
            )
    finally:
        textpage.close()
    blocks = [b for b in blocks if b.kind in _ALWAYS_KEPT or len(b.text) >= params.min_text_length]
    blocks.sort(key=lambda b: (round(b.box.top), b.box.x0))
    page_image = None
    if page_render is not None and params.store_page_images:
        page_image = scratch / f"page_{page_number:05d}.jpg"
        page_render.save(page_image, format="JPEG", quality=85)
    size = (page.get_width(), page.get_height())
    documents = []
    for index, block in enumerate(blocks):
        document = _block_document(block, page_number, index, size)
        if page_image is not None:
            document.blobs.append(blob("page_image_url", page_image, "artifact", "image", "image/jpeg"))
        if page_render is not None and params.generate_thumbnails:
            crop = crop_points(page_render, block.box, params.render_dpi)
            scale = params.thumbnail_dpi / params.render_dpi
            crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
            target = scratch / f"block_{page_number:05d}_{index:04d}.jpg"
            crop.save(target, format="JPEG", quality=85)
            document.blobs.append(blob("segment_thumbnail_url", target, "thumbnail", "image", "image/jpeg"))
        documents.append(document)
    return documents


def _block_document(block: Block, page_number: int, index: int, size: tuple[float, float]) -> ExtractedDocument:
    fields: dict[str, Any] = {
        "text": block.text,
        "object_type": block.kind,
        "page_number": page_number,
        "block_index": index,
        "bbox": {
            "x": round(block.box.x0, 2),
            "y": round(block.box.top, 2),
            "width": round(block.box.width, 2),
            "height": round(block.box.height, 2),
        },
        "confidence_score": round(block.confidence, 4),
        "confidence_tag": confidence_tag(block.confidence),
        "text_source": block.source,
        "page_width": round(size[0], 2),
        "page_height": round(size[1], 2),
    }
    return ExtractedDocument(fields=fields, position={"page_number": page_number, "block_index": index})


def confidence_tag(score: float) -> Literal["A", "B", "C", "D"]:
    if score >= 0.9:
        return "A"
    if score >= 0.75:
        return "B"
    if score >= 0.5:
        return "C"
    return "D"


def _embed(results: list[RowResult], params: DocumentGraphParams, device: str) -> None:
    """Every block of the batch in one call; a block without text (a bare figure) gets no vector."""
    if not params.run_text_embedding:
        return
    documents = [d for r in results for d in r.documents if d.fields["text"]]
    vectors = embed_texts([d.fields["text"] for d in documents], key="minilm", device=device)
    for document, vector in zip(documents, vectors, strict=True):
        document.vectors["text_embedding"] = vector.tolist()


DOCUMENT_GRAPH_EXTRACTOR = DocumentGraphExtractor()
