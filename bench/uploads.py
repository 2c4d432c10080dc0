"""Benchmark presigned uploads on the local back end against a real server on loopback.

    python bench/uploads.py [--put-mib 256] [--reps 3] [--batch 100] [--multipart-mib 2048] [--only put]

Measures, in one run and on one disk:
  1. PUT throughput through a local presigned URL vs a plain file copy of the
     same bytes (both end with fsync), as a ratio: issue 24's figure, at its 256 MiB
     (goal >= 0.5; `--put-mib 1024` for the earlier size); and vs one MD5 pass over
     them, the ceiling of any PUT whose ETag is the body's MD5 (the contract's);
  2. wall time of a batch confirm of 100 uploads (request -> task COMPLETED);
  3. a 2 GB multipart upload (64 MiB parts) and its background confirm, with
     the server's peak resident memory.
Prints a table and writes bench/results/uploads.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from figures import Figure, print_figures, write_results
from live_server import Server, api_client, create_upload, wait_task

MiB = 1024 * 1024
PART = 64 * MiB


# -- data -----------------------------------------------------------------------------


def write_source(path: Path, size: int, seed: str) -> None:
    """A file of `size` bytes, distinct per MiB so no two runs share content."""
    block = hashlib.shake_256(seed.encode()).digest(MiB)
    with path.open("wb") as out:
        for index in range(size // MiB):
            out.write(index.to_bytes(8, "big") + block[8:])
        out.flush()
        os.fsync(out.fileno())


def put(url: str, path: Path, start: int, length: int, content_type: str | None) -> dict[str, str]:
    """PUT a file range with sendfile(2): the client costs almost no CPU, so what is
    measured is the server (both share this machine's cores). Returns the response headers."""
    parts = urlsplit(url)
    head = [
        f"PUT {parts.path}?{parts.query} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Length: {length}",
        "Connection: close",
    ] + ([f"Content-Type: {content_type}"] if content_type else [])
    with socket.create_connection((parts.hostname, parts.port)) as sock, path.open("rb") as source:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendfile(source, start, length)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"PUT answered {response.status}: {body[:300]!r}")
        return dict(response.getheaders())


def plain_copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


# -- measurements -----------------------------------------------------------------------


def measure_put_vs_copy(api: httpx.Client, work: Path, size: int, reps: int) -> dict[str, Any]:
    source = work / "put-source.bin"
    write_source(source, size, "put")
    copy_times, put_times = [], []
    for rep in range(reps):
        target = work / f"copy-{rep}.bin"
        started = time.perf_counter()
        plain_copy(source, target)
        copy_times.append(time.perf_counter() - started)
        target.unlink()

        upload = create_upload(api, f"put-{rep}.mp4", size)
        started = time.perf_counter()
        put(upload["presigned_url"], source, 0, size, "video/mp4")
        put_times.append(time.perf_counter() - started)
        api.delete(f"/v1/buckets/bench/uploads/{upload['upload_id']}").raise_for_status()
    md5_s = _md5_seconds(source)
    source.unlink()
    copy_s, put_s = statistics.median(copy_times), statistics.median(put_times)
    return {
        "bytes": size,
        "reps": reps,
        "copy_seconds": copy_times,
        "put_seconds": put_times,
        "copy_mib_per_s": size / MiB / copy_s,
        "put_mib_per_s": size / MiB / put_s,
        "put_to_copy_ratio": copy_s / put_s,
        # The contract's ETag is the body's MD5, and MD5 is serial: no PUT can outrun one core's MD5.
        "md5_mib_per_s": size / MiB / md5_s,
        "md5_to_copy_ratio": copy_s / md5_s,
    }


def _md5_seconds(source: Path) -> float:
    """One MD5 pass over `source` (read from the page cache), in this process: the PUT's ceiling."""
    started = time.perf_counter()
    with source.open("rb") as handle:
        hashlib.file_digest(handle, "md5")
    return time.perf_counter() - started


def _put_notes(api: httpx.Client, count: int) -> list[dict[str, Any]]:
    created = api.post(
        "/v1/buckets/bench/uploads/batch",
        json={
            "uploads": [
                {"filename": f"n{i}.txt", "content_type": "text/plain", "blob_property": "note"} for i in range(count)
            ]
        },
    )
    created.raise_for_status()
    confirmations = []
    for i, upload in enumerate(created.json()["uploads"]):
        body = f"note number {i}\n".encode() * 64
        response = httpx.put(upload["presigned_url"], content=body, headers={"Content-Type": "text/plain"})
        response.raise_for_status()
        confirmations.append(
            {"upload_id": upload["upload_id"], "etag": response.headers["ETag"], "file_size_bytes": len(body)}
        )
    return confirmations


def measure_batch_confirm(api: httpx.Client, count: int) -> dict[str, Any]:
    """One batch confirm of `count` uploads (request -> task done) against confirming as many
    other uploads one request at a time, which is what a client without the batch call does."""
    batch, singles = _put_notes(api, count), _put_notes(api, count)
    started = time.perf_counter()
    answer = api.post("/v1/buckets/bench/uploads/confirm/batch", json={"confirmations": batch})
    answer.raise_for_status()
    task = wait_task(api, answer.json()["task_id"])
    elapsed = time.perf_counter() - started
    ok = sum(1 for o in task["outputs"] if o.get("success"))
    started = time.perf_counter()
    for confirmation in singles:
        api.post(
            f"/v1/buckets/bench/uploads/{confirmation['upload_id']}/confirm",
            json={"etag": confirmation["etag"], "file_size_bytes": confirmation["file_size_bytes"]},
        ).raise_for_status()
    one_by_one = time.perf_counter() - started
    return {
        "uploads": count,
        "status": task["status"],
        "succeeded": ok,
        "seconds": elapsed,
        "one_by_one_seconds": one_by_one,
        "ms_per_upload": elapsed * 1000 / count,
    }


def measure_multipart(api: httpx.Client, server: Server, work: Path, size: int) -> dict[str, Any]:
    source = work / "multipart-source.bin"
    write_source(source, size, "multipart")
    upload = create_upload(api, "big.mp4", size)
    plan = api.post(f"/v1/buckets/bench/uploads/{upload['upload_id']}/multipart", json={"part_size_bytes": PART}).json()
    server.reset_peak()
    rss_before = server.memory()["VmRSS"]
    started = time.perf_counter()
    for part in plan["parts"]:
        put(part["presigned_url"], source, (part["part_number"] - 1) * PART, part["size_bytes"], None)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    answer = api.post(f"/v1/buckets/bench/uploads/{upload['upload_id']}/confirm", json={"file_size_bytes": size}).json()
    if answer["status"] == "PROCESSING":  # large files are confirmed in the background
        task = wait_task(api, answer["task_id"])
        status, etag = task["status"], task["outputs"][0].get("etag")
    else:
        status, etag = answer["status"], answer["etag"]
    confirm_s = time.perf_counter() - started
    peak = server.memory()["VmHWM"]
    started = time.perf_counter()  # baseline for the confirm: reading and hashing the bytes once
    with source.open("rb") as handle:
        hashlib.file_digest(handle, "sha256")
    hash_s = time.perf_counter() - started
    source.unlink()
    return {
        "bytes": size,
        "parts": plan["part_count"],
        "part_bytes": PART,
        "task_status": status,
        "etag": etag,
        "parts_put_seconds": put_s,
        "parts_put_mib_per_s": size / MiB / put_s,
        "confirm_seconds": confirm_s,
        "sha256_seconds": hash_s,
        "server_rss_before_mib": rss_before / MiB,
        "server_peak_rss_mib": peak / MiB,
        "server_peak_growth_mib": (peak - rss_before) / MiB,
    }


# -- report -------------------------------------------------------------------------------


def figures_of(results: dict[str, Any]) -> list[Figure]:
    """The figures of whichever measurements ran (`--only` runs one)."""
    figures: list[Figure] = []
    put_copy = results.get("put_vs_copy")
    copy = put_copy["copy_mib_per_s"] if put_copy else None
    copy_name = f"plain file copy of {put_copy['bytes'] // MiB} MiB (+fsync)" if put_copy else ""
    if put_copy:
        figures.append(
            Figure(
                "put_mib_per_s",
                f"PUT of {put_copy['bytes'] // MiB} MiB via local presigned URL",
                put_copy["put_mib_per_s"],
                "MiB/s",
                "higher",
                copy,
                copy_name,
                f"median of {put_copy['reps']}; goal ratio >= 0.5 (issue 24)",
            )
        )
        figures.append(
            Figure(
                "put_vs_md5",
                "PUT vs the MD5 its ETag needs",
                put_copy["put_mib_per_s"],
                "MiB/s",
                "higher",
                put_copy["md5_mib_per_s"],
                f"one MD5 pass over the same {put_copy['bytes'] // MiB} MiB, one core",
                f"the MD5 alone is {put_copy['md5_to_copy_ratio']:.2f} of the copy: the PUT's ceiling",
            )
        )
    if batch := results.get("batch_confirm"):
        figures.append(
            Figure(
                "batch_confirm_s",
                f"batch confirm of {batch['uploads']} uploads",
                batch["seconds"],
                "s",
                "lower",
                batch["one_by_one_seconds"],
                f"{batch['uploads']} single confirms, one request each",
                f"{batch['status']}, {batch['succeeded']} ok",
            )
        )
    if multi := results.get("multipart"):
        figures += [
            Figure(
                "multipart_put_mib_per_s",
                f"multipart PUT, {multi['parts']} x {multi['part_bytes'] // MiB} MiB",
                multi["parts_put_mib_per_s"],
                "MiB/s",
                "higher",
                copy,
                copy_name,
            ),
            Figure(
                "multipart_confirm_s",
                f"multipart confirm of {multi['bytes'] / MiB / 1024:.0f} GiB (join + verify)",
                multi["confirm_seconds"],
                "s",
                "lower",
                multi["sha256_seconds"],
                "sha256 of the same bytes, in-process",
                multi["task_status"],
            ),
            Figure(
                "multipart_peak_rss_mib",
                "server peak RSS during multipart",
                multi["server_peak_rss_mib"],
                "MiB",
                "lower",
                multi["server_rss_before_mib"],
                "server RSS before the upload",
            ),
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--put-mib", type=int, default=256, help="size of the PUT-vs-copy file (issue 24: 256)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--multipart-mib", type=int, default=2048)
    parser.add_argument("--work-dir", type=Path, default=None, help="where data goes (default: a temp dir)")
    parser.add_argument("--only", choices=["put", "batch", "multipart"], default=None, help="run one measurement")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="strataflow-bench-", dir=args.work_dir))
    server = Server(work / "data")
    try:
        api = api_client(server)
        runs = {
            "put": ("put_vs_copy", lambda: measure_put_vs_copy(api, work, args.put_mib * MiB, args.reps)),
            "batch": ("batch_confirm", lambda: measure_batch_confirm(api, args.batch)),
            "multipart": ("multipart", lambda: measure_multipart(api, server, work, args.multipart_mib * MiB)),
        }
        results = {key: run() for name, (key, run) in runs.items() if args.only in (None, name)}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures = figures_of(results)
    print_figures(figures)
    if args.only is None:  # a partial run would replace the full result file with part of it
        print(f"written to {write_results('uploads', figures, results)}")


if __name__ == "__main__":
    main()
