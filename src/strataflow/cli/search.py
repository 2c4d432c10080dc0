"""`strataflow search "query" --collection C` (or `--image PHOTO`): ranked hits with where they came from."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from strataflow.cli.client import ApiError, Client, KeyOption, NamespaceOption, UrlOption, resolve_connection

console = Console()


def _is_vision(feature: dict[str, Any]) -> bool:
    """A vision model's feature: searchable by text (its text tower) and by image."""
    return str((feature.get("vector_index") or {}).get("inference_name") or "").startswith("vision:")


def _feature_uri(client: Client, collection: str, feature: str | None, by_image: bool) -> tuple[str, str]:
    """The collection's id and the feature to search: the one asked for, or the first one the query fits
    (a vision model's feature first: it is a collection's primary feature when there is one)."""
    info = client.get(f"/v1/collections/{collection}")
    features = client.get(f"/v1/collections/{info['collection_id']}/features").get("features") or []
    uris = [f.get("feature_uri") or f.get("feature_address") for f in features]
    if feature:
        matches = [u for u in uris if u == feature or (u or "").endswith("/" + feature)]
        if not matches:
            raise ApiError(f"collection {collection} has no feature {feature!r}; it has: {', '.join(map(str, uris))}")
        return info["collection_id"], str(matches[0])
    if by_image:
        searchable = [f for f in features if _is_vision(f)]
        if not searchable:
            raise ApiError(
                f"collection {collection} has no vision-model feature an image query can search "
                "(see `strataflow models list` and the collection's vision_model parameter)"
            )
    else:
        # A text query needs a text space: skip visual descriptors, which no text can be compared with.
        searchable = [f for f in features if "visual_descriptor" not in str(f.get("feature_uri"))]
        if not searchable:
            raise ApiError(f"collection {collection} has no feature a text query can search")
    return info["collection_id"], str(searchable[0].get("feature_uri") or searchable[0].get("feature_address"))


def _image_query(path: Path) -> dict[str, str]:
    """A local picture as the contract's content query: a base64 data URI."""
    if not path.is_file():
        raise ApiError(f"{path} is not a file")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    encoded = base64.b64encode(path.read_bytes()).decode()
    return {"input_mode": "content", "value": f"data:{content_type};base64,{encoded}"}


def _where(hit: dict[str, Any]) -> str:
    """Where in its source a hit sits: times of a segment, page of a PDF block, chunk of a text."""
    parts = []
    if hit.get("start_time") is not None:
        parts.append(f"{hit['start_time']:.1f}–{hit.get('end_time', 0):.1f} s")
    if hit.get("page_number") is not None:
        parts.append(f"page {hit['page_number'] + 1}")
    if hit.get("chunk_index") is not None and hit.get("total_chunks"):
        parts.append(f"chunk {hit['chunk_index'] + 1}/{hit['total_chunks']}")
    return ", ".join(parts)


def _excerpt(hit: dict[str, Any], width: int = 90) -> str:
    text = str(hit.get("text") or hit.get("transcription") or hit.get("ocr_text") or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def search(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name or id to search.")],
    query: Annotated[str | None, typer.Argument(help="What to look for (text).", show_default=False)] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Search by this picture instead of text (vision features).")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=500, help="How many hits to show.")] = 10,
    feature: Annotated[str | None, typer.Option(help="Feature URI (or its last part) when there are several.")] = None,
    namespace: NamespaceOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Search a collection with a text query or a picture; shows score, text, source object and position."""
    if (query is None) == (image is None):
        raise ApiError('give either a text query or --image PATH, e.g. strataflow search "red boat" -c photos')
    stage_query: Any = "{{INPUT.query}}" if image is None else _image_query(image)
    with Client(resolve_connection(url, api_key), namespace) as client:
        collection_id, uri = _feature_uri(client, collection, feature, image is not None)
        answer = client.post(
            "/v1/retrievers/execute",
            json={
                "collection_identifiers": [collection_id],
                "input_schema": {"query": {"type": "text", "required": False}},
                "stages": [
                    {
                        "stage_name": "search",
                        "stage_type": "filter",
                        "config": {
                            "stage_id": "feature_search",
                            "parameters": {
                                "searches": [{"feature_uri": uri, "query": stage_query, "top_k": top_k}],
                                "final_top_k": top_k,
                            },
                        },
                    }
                ],
                "inputs": {"query": query} if query is not None else {},
                "pagination": {"method": "offset", "page_size": top_k, "page_number": 1},
            },
        )
    hits = answer.get("documents") or []
    asked = repr(query) if query is not None else f"picture {image}"
    table = Table(title=f"{len(hits)} hit(s) for {asked} in {collection} ({uri})", title_justify="left")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("text")
    table.add_column("object", no_wrap=True)
    table.add_column("where", no_wrap=True)
    for hit in hits:
        lineage = (hit.get("_internal") or {}).get("lineage") or {}
        table.add_row(f"{hit.get('score', 0):.3f}", _excerpt(hit), str(lineage.get("root_object_id", "")), _where(hit))
    console.print(table)
