"""Where the index lives: LanceDB's storage options for an index on S3, from Strataflow's S3 settings.

`STRATAFLOW_INDEX_URI=s3://bucket/prefix` uses the same endpoint, region, keys and
addressing as the blob store (`STRATAFLOW_S3_*`), so one set of settings serves
both; without them LanceDB would look only at the `AWS_*` environment and fail
to resolve a region for an S3-compatible server.
"""

from __future__ import annotations

from pathlib import Path

from strataflow.config import Settings
from strataflow.index.locks import FileTableLocks, PostgresTableLocks, TableLocks


def index_storage_options(settings: Settings) -> dict[str, str] | None:
    """LanceDB `storage_options` for the configured index; None for a local directory."""
    uri = settings.resolved_index_uri
    if not uri.startswith(("s3://", "s3+ddb://")):
        return None
    options = {"region": settings.s3_region}
    if settings.s3_access_key_id and settings.s3_secret_access_key:  # else the AWS chain (env, instance role)
        options.update(access_key_id=settings.s3_access_key_id, secret_access_key=settings.s3_secret_access_key)
    if settings.s3_endpoint_url:
        options["endpoint"] = settings.s3_endpoint_url
        if settings.s3_endpoint_url.startswith("http://"):  # MinIO or a test server without TLS
            options["allow_http"] = "true"
    # Path-style addressing (endpoint/bucket) is what MinIO and most S3-compatible servers want;
    # LanceDB's key for it is the inverse, virtual-hosted-style requests.
    options["virtual_hosted_style_request"] = "false" if settings.s3_path_style else "true"
    return options


def index_write_locks(settings: Settings) -> TableLocks:
    """The lock every writer of this index shares.

    A local index: a file lock beside its tables. An index on S3: PostgreSQL's advisory locks
    when the database is PostgreSQL (writers on several hosts share it); with SQLite the
    writers are the processes of one host, sharing the data directory, so a file lock there.
    """
    uri = settings.resolved_index_uri
    if "://" not in uri:
        return FileTableLocks(Path(uri) / ".locks")
    if settings.resolved_database_url.startswith("postgresql"):
        return PostgresTableLocks(settings.resolved_database_url, uri)
    return FileTableLocks(settings.data_dir / "index-locks")
