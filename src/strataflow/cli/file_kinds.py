"""What kind of file is this, and which extractor reads it.

A bucket `strataflow ingest` creates has one property per kind, named after the kind unless
`--property` names it (a text file's object has a `text` blob, an image's an `image` blob, …),
so one bucket can hold a mixed folder. Which property of an existing bucket receives which
kind is `property_map`'s business."""

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
FALLBACK_TYPES = {
    "text": "text/plain",
    "image": "application/octet-stream",
    "video": "application/octet-stream",
    "audio": "application/octet-stream",
    "pdf": "application/pdf",
}
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
        return (
            guessed if guessed and (guessed.startswith("text/") or guessed.endswith(("json", "xml"))) else "text/plain"
        )
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


def bucket_schema(targets: dict[str, str]) -> dict[str, Any]:
    """The schema of a bucket ingest creates: `targets` maps each kind to its property's name."""
    properties: dict[str, Any] = {name: {"type": kind} for kind, name in sorted(targets.items())}
    return {"properties": {**properties, **METADATA_PROPERTIES}}


@dataclass(frozen=True)
class DefaultCollection:
    """The collection `ingest` creates for a kind when the bucket has none."""

    kind: str
    extractor: str
    input_mappings: dict[str, str]
    parameters: dict[str, Any]


def default_collections(
    targets: dict[str, str], text_model: str, vision_model: str | None = None
) -> list[DefaultCollection]:
    """One collection per kind that has files and a property: each reads the property its kind
    goes to (`targets`: kind -> property name), never one the bucket lacks. `vision_model` (an
    installed CLIP/SigLIP model) embeds images and video keyframes; None leaves it to the server."""
    vision = {"vision_model": vision_model} if vision_model else {}
    plans: list[DefaultCollection] = []
    if "text" in targets:
        plans.append(
            DefaultCollection(
                "text",
                "text_extractor",
                {"text": targets["text"]},
                {"split_by": "paragraphs", "chunk_size": 1, "model": text_model},
            )
        )
    if "image" in targets:
        plans.append(DefaultCollection("image", "image_extractor", {"image": targets["image"]}, dict(vision)))
    media = sorted(set(targets) & {"video", "audio"})
    if media:  # the multimodal extractor's inputs are named `video` and `audio`, like the kinds
        plans.append(DefaultCollection("media", "multimodal_extractor", {k: targets[k] for k in media}, dict(vision)))
    if "pdf" in targets:
        plans.append(DefaultCollection("pdf", "document_graph_extractor", {"pdf": targets["pdf"]}, {}))
    return plans


def passthrough_fields(schema: dict[str, Any]) -> list[str]:
    """The metadata properties a default collection copies into its documents: those the bucket
    declares as they are declared here (a collection refuses to pass through a field its bucket lacks)."""
    properties = schema.get("properties") or {}
    return [
        name for name, field in METADATA_PROPERTIES.items() if (properties.get(name) or {}).get("type") == field["type"]
    ]


def collection_request(bucket_id: str, name: str, plan: DefaultCollection, passthrough: list[str]) -> dict[str, Any]:
    return {
        "collection_name": name,
        "description": f"{plan.kind} files of the bucket, made by `strataflow ingest`",
        "source": {"type": "bucket", "bucket_ids": [bucket_id]},
        "feature_extractor": {
            "feature_extractor_name": plan.extractor,
            "version": "v1",
            "input_mappings": plan.input_mappings,
            "field_passthrough": [{"source_path": field} for field in passthrough],
            "parameters": {"extractor_type": plan.extractor, **plan.parameters},
        },
    }
