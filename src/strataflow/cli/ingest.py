"""`strataflow ingest PATH --bucket B`: a folder into a bucket, through its collections, with progress,
and an exit code a script can trust."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from strataflow.cli.batch_progress import collection_names, documents_per_collection, follow_batch, styled
from strataflow.cli.client import ApiError, Client, KeyOption, NamespaceOption, UrlOption, resolve_connection
from strataflow.cli.file_kinds import (
    LocalFile,
    bucket_schema,
    collection_request,
    default_collections,
    passthrough_fields,
    walk,
)
from strataflow.cli.property_map import PropertyMap, map_properties, new_bucket_targets, parse_choices
from strataflow.cli.uploader import ProgressHooks, UploadOutcome, upload_files

console = Console()


PropertyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--property",
        "-p",
        metavar="KIND=NAME",
        help="Send files of KIND (text, image, video, audio, pdf) to the bucket property NAME (repeatable). "
        "Needed where the bucket has several properties of that type; names the property of a new bucket.",
    ),
]


def ingest(
    path: Annotated[Path, typer.Argument(help="A folder (walked recursively) or a single file.", exists=True)],
    bucket: Annotated[str, typer.Option("--bucket", "-b", help="Bucket name or id; created when missing.")],
    namespace: NamespaceOption = "default",
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection",
            "-c",
            help="Process with these collections (repeatable). Default: the bucket's "
            "collections, or one per file kind created on first use.",
        ),
    ] = None,
    properties: PropertyOption = None,
    allow_skipped: Annotated[
        bool,
        typer.Option(
            "--allow-skipped",
            help="Exit 0 even when files were skipped because the bucket has no property "
            "for their kind (they are listed either way).",
        ),
    ] = False,
    text_model: Annotated[
        str, typer.Option(help="Embedding model of a default text collection: minilm (quality) or wordllama (fast).")
    ] = "minilm",
    vision_model: Annotated[
        str | None,
        typer.Option(
            help="Installed CLIP/SigLIP model (`strataflow models list` on the server) that embeds the images "
            "and video keyframes of default collections; default: the server's STRATAFLOW_VISION_MODEL."
        ),
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, max=32, help="Files uploaded at once.")] = 4,
    process: Annotated[bool, typer.Option(help="Submit a batch of the new objects and follow it.")] = True,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload every file under PATH into the bucket property of its kind (resumable: files already
    in the bucket are skipped by SHA-256), create bucket, namespace and collections when missing,
    then process the new objects as one batch. Exits 0 only when every file was stored or already
    there and the batch completed; otherwise 1, with each file's reason in the summary."""
    started = time.monotonic()
    files, unknown = walk(path)
    if not files:
        raise ApiError(f"no files of a known kind under {path} (text, image, video, audio, pdf)")
    choices = parse_choices(properties)
    kinds = {f.kind for f in files}
    connection = resolve_connection(url, api_key)
    with Client(connection) as admin:
        _ensure_namespace(admin, namespace)
    with Client(connection, namespace) as client:
        bucket_row = _ensure_bucket(client, bucket, kinds, choices)
        bucket_id = str(bucket_row["bucket_id"])
        schema = bucket_row.get("bucket_schema") or {}
        mapping = map_properties(str(bucket_row["bucket_name"]), schema, kinds, choices)
        _announce(mapping)
        accepted = [f for f in files if f.kind in mapping.targets]
        report = Report(
            skipped=[(f.relative, mapping.missing[f.kind]) for f in files if f.kind in mapping.missing],
            left_out=[(p.name, "unknown file kind") for p in unknown],
        )
        collections = (
            _collections(
                client,
                bucket_id,
                str(bucket_row["bucket_name"]),
                schema,
                mapping.targets,
                collection,
                text_model,
                vision_model,
            )
            if accepted
            else []
        )
        report.upload = _upload(client, bucket_id, accepted, mapping.targets, parallel)
        if process and report.upload.new_object_ids and collections:
            report.batch = _process(client, bucket_id, report.upload.new_object_ids)
        elif process and not report.upload.new_object_ids:
            console.print(_nothing_new(report, len(files)))
        _summary(client, bucket_id, report, time.monotonic() - started)
    verdict = report.verdict(allow_skipped)
    if verdict:
        Console(stderr=True).print(f"[red]ingest incomplete:[/] {verdict}", highlight=False)
        raise typer.Exit(1)


@dataclass
class Report:
    """Everything the summary shows, and what decides the exit code."""

    skipped: list[tuple[str, str]]  # (file, reason): the bucket has no property for its kind
    left_out: list[tuple[str, str]]  # (file, reason): a kind ingest does not know; never counted against
    upload: UploadOutcome = field(default_factory=UploadOutcome)
    batch: dict[str, Any] | None = None
    processing_failures: list[tuple[str, str]] = field(default_factory=list)  # (file or object, reason)

    def verdict(self, allow_skipped: bool) -> str:
        """Empty when a script may go on: every file stored or already there, the batch COMPLETED."""
        problems = []
        if self.upload.failures:
            problems.append(f"{len(self.upload.failures)} file(s) failed")
        if self.skipped and not allow_skipped:
            problems.append(
                f"{len(self.skipped)} file(s) skipped: the bucket has no property of their kind "
                f"(--allow-skipped accepts that)"
            )
        if self.batch is not None and self.batch["status"] != "COMPLETED":
            problems.append(f"batch {self.batch['batch_id']} ended {self.batch['status']}")
        return "; ".join(problems)


def _announce(mapping: PropertyMap) -> None:
    for kind, name in sorted(mapping.targets.items()):
        if name != kind:
            console.print(f"{kind} files go to property [bold]{name}[/]")


def _nothing_new(report: Report, total: int) -> str:
    there = len(report.upload.already_there)
    if there == total:
        return "nothing new to process: every file is already in the bucket"
    return f"nothing new to process: {there} of {total} files already in the bucket, none stored now"


def _ensure_namespace(client: Client, namespace: str) -> None:
    try:
        client.get(f"/v1/namespaces/{namespace}")
    except ApiError as error:
        if error.status != 404:
            raise
        client.post("/v1/namespaces", json={"namespace_name": namespace})
        console.print(f"created namespace [bold]{namespace}[/]")


def _ensure_bucket(client: Client, bucket: str, kinds: set[str], choices: dict[str, str]) -> dict[str, Any]:
    try:
        return dict(client.get(f"/v1/buckets/{bucket}"))
    except ApiError as error:
        if error.status != 404:
            raise
    targets = new_bucket_targets(kinds, choices)
    row = dict(client.post("/v1/buckets", json={"bucket_name": bucket, "bucket_schema": bucket_schema(targets)}))
    console.print(
        f"created bucket [bold]{bucket}[/] with properties {', '.join(sorted(targets.values()))}, filename, path"
    )
    return row


def _collections(
    client: Client,
    bucket_id: str,
    bucket_name: str,
    schema: dict[str, Any],
    targets: dict[str, str],
    wanted: list[str] | None,
    text_model: str,
    vision_model: str | None = None,
) -> list[str]:
    if wanted:
        return [str(client.get(f"/v1/collections/{name}")["collection_id"]) for name in wanted]
    existing = [
        c
        for c in client.post("/v1/collections/list", json={}, params={"limit": 100})["results"]
        if bucket_id in ((c.get("source") or {}).get("bucket_ids") or [])
    ]
    if existing:
        return [str(c["collection_id"]) for c in existing]
    available = {e["feature_extractor_name"] for e in client.get("/v1/collections/features/extractors")}
    passthrough = passthrough_fields(schema)
    made: list[str] = []
    for plan in default_collections(targets, text_model, vision_model):
        if plan.extractor not in available:
            console.print(
                f"[yellow]this server has no {plan.extractor}: {plan.kind} files are stored, not processed[/]"
            )
            continue
        name = f"{bucket_name}-{plan.kind}"
        row = client.post("/v1/collections", json=collection_request(bucket_id, name, plan, passthrough))
        console.print(f"created collection [bold]{name}[/] ({plan.extractor})")
        made.append(str(row["collection_id"]))
    return made


def _upload(
    client: Client, bucket_id: str, files: list[LocalFile], targets: dict[str, str], parallel: int
) -> UploadOutcome:
    """One live display (rich allows one at a time): hashing and upload in bytes, confirms in files."""
    total_bytes = sum(f.size for f in files)
    sendable = sum(1 for f in files if f.size > 0)
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
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
            progress.update(
                confirmed_task, detail=f"{int(progress.tasks[confirmed_task].completed)} / {sendable} files"
            )

        return upload_files(client, bucket_id, files, targets, ProgressHooks(hashed, uploaded, confirmed), parallel)


def _process(client: Client, bucket_id: str, object_ids: list[str]) -> dict[str, Any]:
    batch = client.post(f"/v1/buckets/{bucket_id}/batches", json={"object_ids": object_ids})
    client.post(f"/v1/buckets/{bucket_id}/batches/{batch['batch_id']}/submit", json={})
    console.print(
        f"batch [bold]{batch['batch_id']}[/] submitted (follow it again with `strataflow watch {batch['batch_id']}`)"
    )
    return follow_batch(client, bucket_id, batch["batch_id"], console)


def _summary(client: Client, bucket_id: str, report: Report, elapsed: float) -> None:
    outcome, batch = report.upload, report.batch
    table = Table(title="ingest summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("objects created", str(len(outcome.new_object_ids)))
    table.add_row("already there (skipped)", str(len(outcome.already_there)))
    table.add_row("skipped (no property)", str(len(report.skipped)))
    table.add_row("files failed", str(len(outcome.failures)))
    if report.left_out:
        table.add_row("left out (unknown kind)", str(len(report.left_out)))
    if batch is not None:
        table.add_row("batch", f"{batch['batch_id']}  {styled(batch['status'])}")
        if batch.get("error"):
            table.add_row("batch error", str(batch["error"]))
        for name, count in documents_per_collection(batch, collection_names(client)).items():
            table.add_row(f"documents in {name}", str(count))
        report.processing_failures = [
            (outcome.paths.get(what, what), reason) for what, reason in _batch_failures(client, bucket_id, batch)
        ]
        if report.processing_failures:
            table.add_row("processing failures", str(len(report.processing_failures)))
        # A mixed bucket runs every collection over every object: a text collection meets images.
        # The engine counts (and skips) rows without a collection's input; they are no failure.
        not_applicable = sum(t.get("documents_missing_input_fields") or 0 for t in batch.get("tier_tasks") or [])
        if not_applicable:
            table.add_row("rows without the collection's input", f"{not_applicable} (other file kinds)")
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)
    failures = [(what, "upload", reason) for what, reason in outcome.failures]
    failures += [(what, "processing", reason) for what, reason in report.processing_failures]
    _listing("failures", "stage", failures)
    _listing(
        "not ingested",
        "outcome",
        [(what, "skipped", reason) for what, reason in report.skipped]
        + [(what, "left out", reason) for what, reason in report.left_out],
    )


def _listing(title: str, middle: str, rows: list[tuple[str, str, str]]) -> None:
    """A table of files and why, the first 50 of them."""
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    table.add_column("file / object")
    table.add_column(middle)
    table.add_column("reason")
    for row in rows[:50]:
        table.add_row(*row)
    console.print(table)
    if len(rows) > 50:
        console.print(f"… and {len(rows) - 50} more")


def _batch_failures(client: Client, bucket_id: str, batch: dict[str, Any]) -> list[tuple[str, str]]:
    if not batch.get("error_summary"):
        return []
    answer = client.get(f"/v1/buckets/{bucket_id}/batches/{batch['batch_id']}/failed-documents", params={"limit": 50})
    return [
        (str(f.get("object_id") or f.get("document_id")), f"{f['error_type']}: {f['error_message']}")
        for f in answer["results"]
    ]
