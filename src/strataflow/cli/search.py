"""`strataflow search "query" --collection C`: ranked hits with where they came from."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from strataflow.cli.client import ApiError, Client, KeyOption, NamespaceOption, UrlOption, resolve_connection

console = Console()


def _feature_uri(client: Client, collection: str, feature: str | None) -> tuple[str, str]:
    """The collection's id and the feature to search: the one asked for, or its first text feature."""
    info = client.get(f"/v1/collections/{collection}")
    features = client.get(f"/v1/collections/{info['collection_id']}/features").get("features") or []
    uris = [f.get("feature_uri") or f.get("feature_address") for f in features]
    if feature:
        matches = [u for u in uris if u == feature or (u or "").endswith("/" + feature)]
        if not matches:
            raise ApiError(f"collection {collection} has no feature {feature!r}; it has: {', '.join(map(str, uris))}")
        return info["collection_id"], str(matches[0])
    # A text query needs a text space: skip visual descriptors, which no text can be compared with.
    searchable = [f for f in features if "visual_descriptor" not in str(f.get("feature_uri"))]
    if not searchable:
        raise ApiError(f"collection {collection} has no feature a text query can search")
    return info["collection_id"], str(searchable[0].get("feature_uri") or searchable[0].get("feature_address"))


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
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name or id to search.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=500, help="How many hits to show.")] = 10,
    feature: Annotated[str | None, typer.Option(help="Feature URI (or its last part) when there are several.")] = None,
    namespace: NamespaceOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Search a collection with a text query; shows score, text, source object and position."""
    with Client(resolve_connection(url, api_key), namespace) as client:
        collection_id, uri = _feature_uri(client, collection, feature)
        answer = client.post(
            "/v1/retrievers/execute",
            json={
                "collection_identifiers": [collection_id],
                "input_schema": {"query": {"type": "text", "required": True}},
                "stages": [
                    {
                        "stage_name": "search",
                        "stage_type": "filter",
                        "config": {
                            "stage_id": "feature_search",
                            "parameters": {
                                "searches": [{"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": top_k}],
                                "final_top_k": top_k,
                            },
                        },
                    }
                ],
                "inputs": {"query": query},
                "pagination": {"method": "offset", "page_size": top_k, "page_number": 1},
            },
        )
    hits = answer.get("documents") or []
    table = Table(title=f"{len(hits)} hit(s) for {query!r} in {collection} ({uri})", title_justify="left")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("text")
    table.add_column("object", no_wrap=True)
    table.add_column("where", no_wrap=True)
    for hit in hits:
        lineage = (hit.get("_internal") or {}).get("lineage") or {}
        table.add_row(f"{hit.get('score', 0):.3f}", _excerpt(hit), str(lineage.get("root_object_id", "")), _where(hit))
    console.print(table)
