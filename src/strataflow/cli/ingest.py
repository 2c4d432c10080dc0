"""`strataflow ingest PATH --bucket B`: a folder into a bucket, through its collections, with progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from strataflow.cli.batch_progress import collection_names, documents_per_collection, follow_batch, styled
from strataflow.cli.client import ApiError, Client, KeyOption, NamespaceOption, UrlOption, resolve_connection
from strataflow.cli.file_kinds import LocalFile, bucket_schema, collection_request, default_collections, walk
from strataflow.cli.uploader import ProgressHooks, UploadOutcome, upload_files

console = Console()


def ingest(
    path: Annotated[Path, typer.Argument(help="A folder (walked recursively) or a single file.", exists=True)],
    bucket: Annotated[str, typer.Option("--bucket", "-b", help="Bucket name or id; created when missing.")],
    namespace: NamespaceOption = "default",
    collection: Annotated[list[str] | None, typer.Option(
        "--collection", "-c", help="Process with these collections (repeatable). Default: the bucket's "
                                   "collections, or one per file kind created on first use.")] = None,
    text_model: Annotated[str, typer.Option(help="Embedding model of a default text collection: "
                                                 "minilm (quality) or wordllama (fast).")] = "minilm",
    parallel: Annotated[int, typer.Option(min=1, max=32, help="Files uploaded at once.")] = 4,
    process: Annotated[bool, typer.Option(help="Submit a batch of the new objects and follow it.")] = True,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload every file under PATH (resumable: files already in the bucket are skipped by SHA-256),
    create bucket, namespace and collections when missing, then process the new objects as one batch."""
    started = time.monotonic()
    files, unknown = walk(path)
    if not files:
        raise ApiError(f"no files of a known kind under {path} (text, image, video, audio, pdf)")
    kinds = {f.kind for f in files}
    connection = resolve_connection(url, api_key)
    with Client(connection) as admin:
        _ensure_namespace(admin, namespace)
    with Client(connection, namespace) as client:
        bucket_row = _ensure_bucket(client, bucket, kinds)
        bucket_id = str(bucket_row["bucket_id"])
        accepted, refused = _fit_schema(files, bucket_row)
        collections = _collections(client, bucket_id, bucket_row["bucket_name"], kinds, collection, text_model)
        outcome = _upload(client, bucket_id, accepted)
        outcome.failures += refused + [(p.name, "unknown file kind") for p in unknown]
        batch: dict[str, Any] | None = None
        if process and outcome.new_object_ids and collections:
            batch = _process(client, bucket_id, outcome.new_object_ids)
        elif process and not outcome.new_object_ids:
            console.print("nothing new to process: every file is already in the bucket")
        _summary(client, bucket_id, outcome, batch, time.monotonic() - started)


def _ensure_namespace(client: Client, namespace: str) -> None:
    try:
        client.get(f"/v1/namespaces/{namespace}")
    except ApiError as error:
        if error.status != 404:
            raise
        client.post("/v1/namespaces", json={"namespace_name": namespace})
        console.print(f"created namespace [bold]{namespace}[/]")


def _ensure_bucket(client: Client, bucket: str, kinds: set[str]) -> dict[str, Any]:
    try:
        return dict(client.get(f"/v1/buckets/{bucket}"))
    except ApiError as error:
        if error.status != 404:
            raise
    row = dict(client.post("/v1/buckets", json={"bucket_name": bucket, "bucket_schema": bucket_schema(kinds)}))
    console.print(f"created bucket [bold]{bucket}[/] with properties {', '.join(sorted(kinds))}, filename, path")
    return row


def _fit_schema(files: list[LocalFile], bucket: dict[str, Any]) -> tuple[list[LocalFile], list[tuple[str, str]]]:
    """An existing bucket may lack a property for some kind: those files are reported, not sent."""
    properties = (bucket.get("bucket_schema") or {}).get("properties") or {}
    accepted = [f for f in files if (properties.get(f.kind) or {}).get("type") == f.kind]
    refused = [(f.relative, f"bucket has no '{f.kind}' property of type {f.kind}") for f in files
               if f not in accepted]
    return accepted, refused


def _collections(client: Client, bucket_id: str, bucket_name: str, kinds: set[str], wanted: list[str] | None,
                 text_model: str) -> list[str]:
    if wanted:
        return [str(client.get(f"/v1/collections/{name}")["collection_id"]) for name in wanted]
    existing = [c for c in client.post("/v1/collections/list", json={}, params={"limit": 100})["results"]
                if bucket_id in ((c.get("source") or {}).get("bucket_ids") or [])]
    if existing:
        return [str(c["collection_id"]) for c in existing]
    available = {e["feature_extractor_name"] for e in client.get("/v1/collections/features/extractors")}
    made: list[str] = []
    for plan in default_collections(kinds, text_model):
        if plan.extractor not in available:
            console.print(f"[yellow]this server has no {plan.extractor}: {plan.kind} files are stored, "
                          f"not processed[/]")
            continue
        name = f"{bucket_name}-{plan.kind}"
        row = client.post("/v1/collections", json=collection_request(bucket_id, name, plan))
        console.print(f"created collection [bold]{name}[/] ({plan.extractor})")
        made.append(str(row["collection_id"]))
    return made


def _upload(client: Client, bucket_id: str, files: list[LocalFile]) -> UploadOutcome:
    """One live display (rich allows one at a time): hashing and upload in bytes, confirms in files."""
    total_bytes = sum(f.size for f in files)
    sendable = sum(1 for f in files if f.size > 0)
    columns = (TextColumn("{task.description:<10}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        def bytes_bar(name: str) -> Callable[[int], None]:
            task = progress.add_task(name, total=total_bytes, detail="")

            def advance(n: int) -> None:
                progress.advance(task, n)
                done = progress.tasks[task].completed
                progress.update(task, detail=f"{decimal(int(done))} / {decimal(total_bytes)}")
            return advance

        hashed, uploaded = bytes_bar("hashed"), bytes_bar("uploaded")
        confirmed_task = progress.add_task("confirmed", total=sendable, detail=f"0 / {sendable} files")

        def confirmed(n: int) -> None:
            progress.advance(confirmed_task, n)
            progress.update(confirmed_task, detail=f"{int(progress.tasks[confirmed_task].completed)} / "
                                                   f"{sendable} files")
        return upload_files(client, bucket_id, files, ProgressHooks(hashed, uploaded, confirmed))


def _process(client: Client, bucket_id: str, object_ids: list[str]) -> dict[str, Any]:
    batch = client.post(f"/v1/buckets/{bucket_id}/batches", json={"object_ids": object_ids})
    client.post(f"/v1/buckets/{bucket_id}/batches/{batch['batch_id']}/submit", json={})
    console.print(f"batch [bold]{batch['batch_id']}[/] submitted "
                  f"(follow it again with `strataflow watch {batch['batch_id']}`)")
    return follow_batch(client, bucket_id, batch["batch_id"], console)


def _summary(client: Client, bucket_id: str, outcome: UploadOutcome, batch: dict[str, Any] | None,
             elapsed: float) -> None:
    table = Table(title="ingest summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("objects created", str(len(outcome.new_object_ids)))
    table.add_row("already there (skipped)", str(len(outcome.skipped)))
    table.add_row("files failed", str(len(outcome.failures)))
    failures = list(outcome.failures)
    if batch is not None:
        table.add_row("batch", f"{batch['batch_id']}  {styled(batch['status'])}")
        for name, count in documents_per_collection(batch, collection_names(client)).items():
            table.add_row(f"documents in {name}", str(count))
        rows = [(outcome.paths.get(what, what), reason) for what, reason in _batch_failures(client, bucket_id, batch)]
        # A mixed bucket runs every collection over every object: a text collection meets images.
        # The engine counts (and skips) rows without a collection's input; they are no failure.
        not_applicable = sum(t.get("documents_missing_input_fields") or 0 for t in batch.get("tier_tasks") or [])
        if not_applicable:
            table.add_row("rows without the collection's input", f"{not_applicable} (other file kinds)")
        failures += rows
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)
    if failures:
        problems = Table(title="failures", title_justify="left")
        problems.add_column("file / object")
        problems.add_column("reason")
        for what, reason in failures[:50]:
            problems.add_row(what, reason)
        console.print(problems)
        if len(failures) > 50:
            console.print(f"… and {len(failures) - 50} more")


def _batch_failures(client: Client, bucket_id: str, batch: dict[str, Any]) -> list[tuple[str, str]]:
    if not batch.get("error_summary"):
        return []
    answer = client.get(f"/v1/buckets/{bucket_id}/batches/{batch['batch_id']}/failed-documents",
                        params={"limit": 50})
    return [(str(f.get("object_id") or f.get("document_id")), f"{f['error_type']}: {f['error_message']}")
            for f in answer["results"]]
