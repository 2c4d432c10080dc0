"""What kind of file is this, which bucket property holds it, and which extractor reads it.

`strataflow ingest` keeps one bucket property per kind (a text file's object has a `text`
blob, an image's an `image` blob, …), so one bucket can hold a mixed folder."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES: dict[str, tuple[str, ...]] = {
    "text": (".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".html", ".htm", ".xml", ".log"),
    "image": (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"),
    "video": (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"),
    "audio": (".mp3", ".wav", ".m4a", ".flac", ".ogg", ".opus", ".aac"),
    "pdf": (".pdf",),
}
KIND_OF_SUFFIX = {suffix: kind for kind, suffixes in SUFFIXES.items() for suffix in suffixes}
# Content types the upload rules accept for each kind when the suffix is not in mimetypes' table.
FALLBACK_TYPES = {"text": "text/plain", "image": "application/octet-stream", "video": "application/octet-stream",
                  "audio": "application/octet-stream", "pdf": "application/pdf"}
# Metadata every ingested object carries, declared in the schema so it can be filtered and passed through.
METADATA_PROPERTIES = {"filename": {"type": "string"}, "path": {"type": "string"}}


@dataclass(frozen=True)
class LocalFile:
    path: Path
    relative: str  # POSIX path under the ingested root: the object's `path` metadata
    kind: str
    content_type: str
    size: int


def kind_of(path: Path) -> str | None:
    return KIND_OF_SUFFIX.get(path.suffix.lower())


def content_type_of(path: Path, kind: str) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    if kind == "text":
        # JSON, XML and HTML stay text; anything odd becomes text/plain, which every text property takes.
        return guessed if guessed and (guessed.startswith("text/") or guessed.endswith(("json", "xml"))) \
            else "text/plain"
    if guessed and guessed.split("/")[0] == kind:
        return guessed
    return FALLBACK_TYPES[kind] if not (kind == "pdf" and guessed) else guessed


def walk(root: Path) -> tuple[list[LocalFile], list[Path]]:
    """Every file under root (a file alone is fine), sorted; hidden files and folders are left out.
    Returns (files we can ingest, files of kinds we do not know)."""
    root = root.resolve()
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root
    files: list[LocalFile] = []
    unknown: list[Path] = []
    for path in candidates:
        relative = path.relative_to(base).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        kind = kind_of(path)
        if kind is None:
            unknown.append(path)
            continue
        files.append(LocalFile(path, relative, kind, content_type_of(path, kind), path.stat().st_size))
    return files, unknown


def bucket_schema(kinds: set[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {kind: {"type": kind} for kind in sorted(kinds)}
    return {"properties": {**properties, **METADATA_PROPERTIES}}


@dataclass(frozen=True)
class DefaultCollection:
    """The collection `ingest` creates for a kind when the bucket has none."""

    kind: str
    extractor: str
    input_mappings: dict[str, str]
    parameters: dict[str, Any]


def default_collections(kinds: set[str], text_model: str) -> list[DefaultCollection]:
    plans: list[DefaultCollection] = []
    if "text" in kinds:
        plans.append(DefaultCollection("text", "text_extractor", {"text": "text"},
                                       {"split_by": "paragraphs", "chunk_size": 1, "model": text_model}))
    if "image" in kinds:
        plans.append(DefaultCollection("image", "image_extractor", {"image": "image"}, {}))
    media = sorted(kinds & {"video", "audio"})
    if media:
        plans.append(DefaultCollection("media", "multimodal_extractor", {k: k for k in media}, {}))
    if "pdf" in kinds:
        plans.append(DefaultCollection("pdf", "document_graph_extractor", {"pdf": "pdf"}, {}))
    return plans


def collection_request(bucket_id: str, name: str, plan: DefaultCollection) -> dict[str, Any]:
    return {
        "collection_name": name,
        "description": f"{plan.kind} files of the bucket, made by `strataflow ingest`",
        "source": {"type": "bucket", "bucket_ids": [bucket_id]},
        "feature_extractor": {
            "feature_extractor_name": plan.extractor, "version": "v1",
            "input_mappings": plan.input_mappings,
            "field_passthrough": [{"source_path": "filename"}, {"source_path": "path"}],
            "parameters": {"extractor_type": plan.extractor, **plan.parameters},
        },
    }
