"""Ray Data pipelines on a real local Ray.

A Ray Data stage worker (the map task forwarding a batch to a warm stage actor) is
killed (SIGKILL) while it runs a batch, with blobs and manifests on S3 (a moto server
over HTTP): Ray retries the task, and the tier completes with every document written
exactly once.
The rules of the local path (rows without the collection's input, lost blobs,
objects deleted after joining, retry rounds of failed rows only) give the same
outcome on Ray Data (tests/scale/test_ray_runner.py covers source filters), and
a cancel stops the execution. A Ray Data tier taken over mid-way resumes: the new
owner runs only the rows whose batches had not committed.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strataflow.config import Settings
from strataflow.engine.fencing import TierFence
from strataflow.engine.manifest import read_manifest
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.runners import Runner
from strataflow.engine.scheduler import Scheduler
from strataflow.engine.tiers.job import ChunkCommit
from tests.api.test_tier_fencing import Crash, _expire, _tier
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.s3_server import MotoServer
from tests.scale.test_ray_runner import TEXT, _api, _submit, _tier_state

STAGE_TASK = "ray::MapBatches(StageForwarder)"  # the title of a Ray Data map task's worker while it runs


def _descendants(root: int) -> set[int]:
    """Process ids under `root` (Linux /proc): this test's Ray (raylet, workers) runs under the test process."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _kill_stage_worker_mid_batch(running: Callable[[], bool]) -> int:
    """SIGKILL a Ray Data stage worker of this test's Ray while it runs a batch ('ray::MapBatches(StageForwarder)')."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and running():
        for pid in _descendants(os.getpid()):
            title = _title(pid)
            if title.startswith(STAGE_TASK):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.01)
    raise AssertionError("no Ray Data stage worker ran a batch")


def test_ray_data_applies_the_local_paths_rules_and_stops_when_canceled(
    tmp_path: Path, shared_runner: Runner, ray_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def settings(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, api_key=ADMIN_KEY, task_poll_interval_s=0.05, extract_batch_size=2)

    local = _rules_outcome(settings("local"), shared_runner)
    # What the local path makes of these rows: no input (empty), a lost blob (lost), an object deleted
    # after it joined (gone); the retry round runs the two failed rows and heals lost.
    assert local["first"] == "COMPLETED_WITH_ERRORS"
    assert local["after_first"]["failed"] == [("gone", "validation", 0), ("lost", "dependency", 0)]
    assert local["after_first"]["counters"]["documents_missing_input_fields"] == 1
    assert local["retry"] == (2, "COMPLETED_WITH_ERRORS")
    assert local["after_retry"]["failed"] == [("gone", "validation", 1)]
    assert {title for title, _ in local["after_retry"]["documents"]} == {"good", "other", "french", "lost"}
    assert _rules_outcome(settings("ray-data"), ray_runner) == local

    # A cancel between output batches stops the Ray Data execution and the warm stage actors it
    # used (a finished tier leaves them warm). Idle pools are kept long here, so only the cancel
    # can end this tier's actors within the test's budget.
    monkeypatch.setattr(
        ray_runner.pipelines, "settings", ray_runner.pipelines.settings.model_copy(update={"ray_actor_idle_s": 600.0})
    )
    with _api(settings("cancel"), ray_runner) as (client, _):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        text_collection(  # chunk_size 2: not the warm pool of the rules run above, a pool of its own
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [make_bucket(client)]},
            split_by="sentences",
            chunk_size=2,
            model="wordllama",
        )
        earlier = _stage_hosts()
        batch_id, _ = _submit(client, [add_object(client, f"{TEXT} Row {i}.") for i in range(40)])
        deadline = time.monotonic() + 120
        while _tier_state(client, batch_id)["performance"]["rows_done"] < 2:
            assert time.monotonic() < deadline and _tier_state(client, batch_id)["status"] != "COMPLETED"
            time.sleep(0.02)
        hosts = _stage_hosts() - earlier
        assert hosts, "the tier ran on no stage actor of its own"
        assert client.post(f"/v1/buckets/docs/batches/{batch_id}/cancel").json()["status"] == "CANCELED"
        # The stop has a budget of its own: on a loaded machine the cold start above can use most of
        # the first one (the actors load a model), which made this fail while the stop was on its way.
        deadline = time.monotonic() + 90
        while hosts & _stage_hosts():
            assert time.monotonic() < deadline, "the canceled tier's stage actors are still running"
            time.sleep(0.1)
        tier = _tier_state(client, batch_id)
    assert tier["status"] == "CANCELED" and tier["performance"]["rows_done"] < 40


def test_a_killed_ray_data_worker_is_replaced_and_the_tier_completes_on_s3(
    tmp_path: Path, ray_runner: Any, moto_server: MotoServer
) -> None:
    objects, sentences = 40, 6
    bucket = f"sf-{secrets.token_hex(6)}"
    moto_server.client().create_bucket(Bucket=bucket)
    settings = Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        extract_batch_size=2,
        **moto_server.settings_for(bucket),
    )
    with _api(settings, ray_runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        bucket_id = make_bucket(client)
        collection = text_collection(
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [bucket_id]},
            split_by="sentences",
            chunk_size=1,
            model="minilm",
        )
        text = " ".join(f"Sentence number {n} of this object." for n in range(sentences))
        object_ids = [add_object(client, f"{text} Unique tail {i}.") for i in range(objects)]
        batch_id, task_id = _submit(client, object_ids)

        killed = _kill_stage_worker_mid_batch(
            lambda: _tier_state(client, batch_id)["status"] in ("PENDING", "IN_PROGRESS")
        )
        killed_while = _tier_state(client, batch_id)["status"]
        assert wait_task(client, task_id, timeout=180)["status"] == "COMPLETED"
        tier = _tier_state(client, batch_id)
        logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
        documents = runtime.index.query(collection["collection_id"], None)

    assert killed_while == "IN_PROGRESS"
    # The manifest was read from S3 by Ray Data, not from a local file.
    assert any(line.startswith("ray data: ") and f"read_parquet(s3://{bucket}/data/" in line for line in logs)
    # Ray recovered inside the tier: the same lease, one attempt, the batch retried on a new process.
    assert tier["status"] == "COMPLETED" and tier["performance"]["attempts"] == 1
    pids = {int(line.split(" pid ")[1].split()[0]) for line in logs if line.startswith("actor ")}
    assert pids - {killed}, (killed, pids)
    # Nothing lost, nothing doubled: each object's sentences written once, each row once.
    expected = objects * (sentences + 1)
    assert tier["documents_written"] == expected and tier["performance"]["rows_done"] == objects
    assert len(documents) == expected and len({d.document_id for d in documents}) == expected
    assert len({(d.lineage["root_object_id"], d.payload.get("chunk_index")) for d in documents}) == expected


def _stage_hosts() -> set[int]:
    """The warm stage actors' processes of this test's Ray."""
    return {pid for pid in _descendants(os.getpid()) if _title(pid).startswith("ray::StageHost")}


def _rules_outcome(settings: Settings, runner: Runner) -> dict[str, Any]:
    """A batch whose rows hit every rule, then a retry round: what came of each row, by name."""
    with _api(settings, runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        bucket_id = make_bucket(client)
        collection = text_collection(
            client,
            "all",
            {"type": "bucket", "bucket_ids": [bucket_id]},
            split_by="sentences",
            chunk_size=1,
            model="wordllama",
        )["collection_id"]
        ids = {
            name: add_object(client, f"{TEXT} Row {name}.", lang="fr" if name == "french" else "en", title=name)
            for name in ("good", "other", "french", "lost", "gone")
        }
        ids["empty"] = client.post(
            "/v1/buckets/docs/objects", json={"blobs": [], "metadata": {"lang": "en", "title": "empty"}}
        ).json()["object_id"]
        names = {object_id: name for name, object_id in ids.items()}
        key = client.get(f"/v1/buckets/docs/objects/{ids['lost']}").json()["blobs"][0]["properties"]["key"]
        saved = runtime.blobs.path(key).read_bytes()
        runtime.blobs.path(key).unlink()  # its bytes vanish: that row fails, the others go on
        batch = client.post("/v1/buckets/docs/batches", json={"object_ids": list(ids.values())}).json()
        client.delete(f"/v1/buckets/docs/objects/{ids['gone']}")  # deleted after it joined the batch
        task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
        first = wait_task(client, task["task_id"], timeout=180)
        assert first["status"] != "FAILED", first  # no rule may fail the tier: rows fail alone
        outcome: dict[str, Any] = {"first": first["status"]}

        def state() -> dict[str, Any]:
            tier = _tier_state(client, batch["batch_id"])
            failed = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}/failed-documents").json()["results"]
            documents = [(d.payload["title"], d.payload["chunk_index"]) for d in runtime.index.query(collection, None)]
            return {
                "counters": {
                    k: tier[k]
                    for k in (
                        "source_documents_fetched",
                        "documents_after_source_filter",
                        "documents_missing_input_fields",
                        "documents_submitted_to_engine",
                        "documents_written",
                    )
                },
                "errors": tier["error_summary"],
                "rows": tier["performance"]["rows_total"],
                "failed": sorted((names[f["object_id"]], f["error_type"], f["retry_count"]) for f in failed),
                "documents": sorted(documents),
            }

        outcome["after_first"] = state()
        runtime.blobs.path(key).write_bytes(saved)  # storage is fixed: a retry round runs the failed rows only
        retry = client.post(
            f"/v1/buckets/docs/batches/{batch['batch_id']}/retry", json={"retry_mode": "all", "tier_nums": [0]}
        ).json()
        outcome["retry"] = (retry["retried_count"], wait_task(client, retry["task_id"], timeout=180)["status"])
        outcome["after_retry"] = state()
        return outcome


def test_a_taken_over_ray_data_tier_runs_only_the_rows_not_committed(tmp_path: Path, ray_runner: Any) -> None:
    objects = 12  # two sentences each, in batches of 2 objects
    settings = Settings(data_dir=tmp_path / "data", api_key=ADMIN_KEY, extract_batch_size=2)
    with _api(settings, ray_runner) as (client, runtime):
        runtime.stop_background()  # the test claims and runs the tier itself, as two workers
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        collection_id = text_collection(
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [make_bucket(client)]},
            split_by="sentences",
            chunk_size=1,
            model="wordllama",
        )["collection_id"]
        object_ids = [add_object(client, f"Object {i} begins. Object {i} ends.", title=f"t{i}") for i in range(objects)]
        batch_id, _ = _submit(client, object_ids)
        executor = runtime.scheduler.executor
        first, second = Scheduler(runtime.db, executor, lease_s=30), Scheduler(runtime.db, executor, lease_s=30)
        commits: list[tuple[int, int, int]] = []  # (token, rows_done, documents_written) of every commit
        ran: dict[int, list[str]] = {1: [], 2: []}  # by token: the rows whose output batches came back

        def recording(scheduler: Scheduler, crash_after: int | None) -> None:
            original = scheduler._commit

            def commit(fence: TierFence, chunk: ChunkCommit) -> None:
                original(fence, chunk)
                commits.append((fence.token, chunk.rows_done, chunk.counters.get("documents_written", -1)))
                if crash_after is not None and sum(1 for c in commits if c[0] == fence.token) > crash_after:
                    raise Crash

            scheduler._commit = commit  # type: ignore[method-assign]

        account = executor._account  # type: ignore[attr-defined]

        def accounting(run: Any, *args: Any) -> None:
            ran[run.job.fence.token].extend(args[3].roots)  # args: batch, tier, collection, step, tally
            account(run, *args)

        executor._account = accounting  # type: ignore[attr-defined]
        recording(first, crash_after=2)  # the initial report and two output batches, then the worker dies
        recording(second, crash_after=None)
        claim = first.claim()
        assert claim is not None
        with pytest.raises(Crash):
            first.run(claim)
        died = _tier(runtime, batch_id)
        assert died.manifest_key is not None
        manifest = [row.row_id for chunk in read_manifest(runtime.blobs, died.manifest_key) for row in chunk]
        done = RowRanges(died.checkpoint["collections"][collection_id]["done"])
        committed = {row_id for position, row_id in enumerate(manifest) if position in done}

        _expire(runtime, batch_id)
        taken = second.claim()
        assert taken is not None and taken.token == 2
        second.run(taken)
        tier = _tier(runtime, batch_id)
        documents = runtime.index.query(collection_id, None)

    assert died.status == "IN_PROGRESS" and 0 < died.rows_done == len(done) == len(committed) < objects
    # The new owner starts from the dead one's last commit and extracts none of its committed rows.
    resumed = [c for c in commits if c[0] == 2]
    assert resumed[0] == (2, died.rows_done, 2 * died.rows_done)
    assert sorted(ran[2]) == sorted(set(object_ids) - committed)
    assert [c[1] for c in resumed] == sorted(c[1] for c in resumed) and resumed[-1][1:] == (objects, 2 * objects)
    assert tier.status == "COMPLETED" and tier.attempts == 2
    assert (tier.rows_done, tier.counters["documents_written"]) == (objects, 2 * objects)
    assert tier.checkpoint["collections"][collection_id]["done"] == [[0, objects]]
    # Each object's documents exactly once.
    roots = [d.lineage["root_object_id"] for d in documents]
    assert len({d.document_id for d in documents}) == len(documents) == 2 * objects
    assert sorted(roots.count(r) for r in set(roots)) == [2] * objects and set(roots) == set(object_ids)
