"""`strataflow watch BATCH_ID`: live per-tier progress of a batch, then its outcome."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from strataflow.cli.batch_progress import (
    collection_names,
    documents_per_collection,
    find_batch_bucket,
    follow_batch,
    styled,
)
from strataflow.cli.client import Client, KeyOption, NamespaceOption, UrlOption, resolve_connection

console = Console()


def watch(
    batch_id: Annotated[str, typer.Argument(help="The batch id (btch_…), as `ingest` prints it.")],
    bucket: Annotated[
        str | None, typer.Option("--bucket", "-b", help="The batch's bucket; found when omitted.")
    ] = None,
    namespace: NamespaceOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Follow a batch tier by tier (rows processed, documents written) until it ends."""
    with Client(resolve_connection(url, api_key), namespace) as client:
        bucket_id = bucket or find_batch_bucket(client, batch_id)
        batch = follow_batch(client, bucket_id, batch_id, console)
        console.print(f"batch {batch_id}: {styled(batch['status'])}")
        for name, count in documents_per_collection(batch, collection_names(client)).items():
            console.print(f"  {name}: {count} documents")
        for tier in batch.get("tier_tasks") or []:
            for error in tier.get("errors") or []:
                console.print(
                    f"  [red]tier {tier['tier_num']}[/]: {error.get('affected_count')} × "
                    f"{error.get('error_type')}: {error.get('message')}"
                )
        if batch["status"] == "FAILED" and batch.get("error"):
            console.print(f"  [red]{batch['error']}[/]")
