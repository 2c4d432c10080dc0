"""The index on S3 (a moto server over HTTP): the S3 settings reach LanceDB, and two writer processes
commit to one table at once without losing or doubling a document.

Lance's conditional-put commits keep versions consistent, but two concurrent merges inserting the same
new id both succeed (the id then exists twice: CI saw it). So writers share a lock per table
(index/locks.py): a file lock in the data directory for the processes of one host (SQLite), an advisory
lock in PostgreSQL for writers on several hosts, each with a data directory of its own here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from strataflow.config import Settings
from strataflow.runtime import open_index
from tests.s3_server import MotoServer

ROUNDS, PER_ROUND = 12, 5

# One writer: ROUNDS commits of its own objects' documents, each also rewriting the shared ones, the way a
# worker writes a chunk (replace_sources: upsert, then drop stale chunks of the same objects).
_WRITER = """
import sys
from strataflow.config import Settings
from strataflow.index.records import StoredDocument
from strataflow.runtime import open_index

name, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
index = open_index(Settings())
for n in range(rounds):
    docs = [StoredDocument(f"doc_{name}_{n}_{k}", "col_s3", {"writer": name, "round": n},
                           {"lineage": {"source_object_id": f"obj_{name}_{n}", "root_object_id": f"obj_{name}_{n}"}},
                           created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z")
            for k in range(per_round)]
    shared = StoredDocument(f"doc_shared_{n}", "col_s3", {"writer": name, "round": n},
                            {"lineage": {"source_object_id": f"obj_shared_{n}", "root_object_id": f"obj_shared_{n}"}},
                            created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z")
    index.replace_sources("col_s3", docs, "source_object_id", [f"obj_{name}_{n}"])
    index.upsert("col_s3", [shared])
"""


def _s3_env(moto_server: MotoServer, bucket: str) -> dict[str, str]:
    """The documented settings for an index on S3, and no AWS_* variable LanceDB could fall back on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRATAFLOW_"))}
    env.update(
        STRATAFLOW_INDEX_URI=f"s3://{bucket}/index",
        STRATAFLOW_S3_ENDPOINT_URL=moto_server.endpoint,
        STRATAFLOW_S3_REGION="us-east-1",
        STRATAFLOW_S3_ACCESS_KEY_ID="testing",
        STRATAFLOW_S3_SECRET_ACCESS_KEY="testing",
        STRATAFLOW_S3_PATH_STYLE="true",
    )
    return env


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_writers_share_one_table_of_an_index_on_s3(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: Any, database: str, request: pytest.FixtureRequest
) -> None:
    bucket = f"sf-index-{secrets.token_hex(4)}"
    moto_server.client().create_bucket(Bucket=bucket)
    env = _s3_env(moto_server, bucket)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    if database == "postgres":
        env["STRATAFLOW_DATABASE_URL"] = request.getfixturevalue("private_pg")
    settings = Settings(
        data_dir=tmp_path,
        **{k.removeprefix("STRATAFLOW_").lower(): v for k, v in env.items() if k.startswith("STRATAFLOW_")},
    )
    index = open_index(settings)
    index.create_table("col_s3", {})

    source = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = source
    # One host (SQLite): the writers share a data directory. Several hosts (PostgreSQL): each has its own.
    data_dirs = {name: tmp_path / (f"host_{name}" if database == "postgres" else "host") for name in "ab"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, name, str(ROUNDS), str(PER_ROUND)],
            env={**env, "STRATAFLOW_DATA_DIR": str(data_dirs[name])},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [writer.communicate(timeout=300)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], outputs

    documents = index.query("col_s3", None)
    ids = [d.document_id for d in documents]
    expected = {f"doc_{name}_{n}_{k}" for name in "ab" for n in range(ROUNDS) for k in range(PER_ROUND)}
    expected |= {f"doc_shared_{n}" for n in range(ROUNDS)}
    assert len(ids) == len(set(ids)) and set(ids) == expected
    # The table lives in the bucket, not in a local directory.
    keys = [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket, Prefix="index/")["Contents"]]
    assert any(key.startswith("index/col_s3.lance/_versions/") for key in keys)
    assert not (tmp_path / "index").exists()
