"""The local blob store: atomic streaming writes, key safety, signed URLs."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from strataflow.blobs.local import LocalBlobStore, load_or_create_secret
from strataflow.errors import BadRequestError


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", b"k" * 32, "http://127.0.0.1:8000")


class _Exploding(io.RawIOBase):
    """A stream that fails half-way, like a client that drops the connection."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        self.calls += 1
        if self.calls > 2:
            raise ConnectionError("client went away")
        buffer[:4] = b"data"
        return 4


def test_write_reports_size_md5_and_sha256(store: LocalBlobStore) -> None:
    payload = b"x" * 3_000_000
    written = store.put_stream("ns/b/o/blob", io.BytesIO(payload))
    assert written.size == len(payload)
    assert written.etag == hashlib.md5(payload).hexdigest()
    assert written.sha256 == hashlib.sha256(payload).hexdigest()
    info = store.head("ns/b/o/blob")
    assert info is not None and (info.size, info.etag) == (len(payload), written.etag)
    assert b"".join(store.iter_chunks("ns/b/o/blob")) == payload


def test_hashes_follow_chunk_order_when_large_chunks_hash_in_parallel(store: LocalBlobStore) -> None:
    # Distinct chunks of mixed sizes (a large chunk's MD5 runs on a helper thread, a small one's
    # inline): a digest that took them out of order, or skipped one, would differ.
    chunks = [
        hashlib.shake_256(bytes([n])).digest(size)
        for n, size in enumerate([1 << 20, 100, 3 << 20, 70_000, 10, 2 << 20, 65_536, 65_535])
    ]
    payload = b"".join(chunks)
    with store.open_writer("ns/b/o/mixed") as writer:
        for chunk in chunks:
            writer.write(chunk)
        written = writer.commit()
    assert (written.size, written.etag, written.sha256) == (
        len(payload),
        hashlib.md5(payload).hexdigest(),
        hashlib.sha256(payload).hexdigest(),
    )
    assert b"".join(store.iter_chunks("ns/b/o/mixed")) == payload


def test_batches_written_behind_keep_their_order(store: LocalBlobStore) -> None:
    # The PUT route queues batch after batch without waiting (write_behind): the file and both
    # digests must still see the bytes in the order given, small batches and large alike.
    batches = [
        [hashlib.shake_256(bytes([n, k])).digest(size) for k, size in enumerate(sizes)]
        for n, sizes in enumerate([[1 << 20], [100, 3 << 20], [70_000], [10], [1 << 18] * 4, [65_535, 1]] * 3)
    ]
    payload = b"".join(b"".join(batch) for batch in batches)
    with store.open_writer("ns/b/o/behind") as writer:
        queued = [writer.write_behind(batch) for batch in batches]
        written = writer.commit()
    assert all(future.done() and future.exception() is None for future in queued)
    assert (written.size, written.etag, written.sha256) == (
        len(payload),
        hashlib.md5(payload).hexdigest(),
        hashlib.sha256(payload).hexdigest(),
    )
    assert store.path("ns/b/o/behind").read_bytes() == payload


def test_a_batch_nobody_waits_for_still_finishes_before_the_file_goes(store: LocalBlobStore) -> None:
    # A PUT whose client goes away stops waiting for its batches (its asyncio wrapper is canceled);
    # the batch cannot be canceled under a running lane, and abort waits for it before removing the file.
    with store.open_writer("ns/b/o/gone") as writer:
        queued = [writer.write_behind([hashlib.shake_256(bytes([n])).digest(4 << 20)]) for n in range(4)]
        assert not any(future.cancel() for future in queued)
    assert all(future.done() and future.exception() is None for future in queued)
    assert not store.path("ns/b/o/gone").exists()
    assert [p.name for p in store.path("ns/b/o").iterdir() if p.name.startswith(".tmp")] == []


def test_a_failed_batch_fails_the_ones_behind_it_and_leaves_no_file(store: LocalBlobStore) -> None:
    store.put_bytes("ns/keep", b"old")
    unwritable = memoryview(b"abcdef" * 50_000)[::2]  # not contiguous: neither file nor digest takes it
    with store.open_writer("ns/keep") as writer:
        first = writer.write_behind([b"x" * (1 << 20)])
        broken = writer.write_behind([unwritable])
        after = writer.write_behind([b"y" * (1 << 20)])
        assert first.result(10) is None
        assert isinstance(broken.exception(10), (BufferError, TypeError, ValueError))
        assert after.exception(10) is not None  # nothing is written past a failure
        with pytest.raises((BufferError, TypeError, ValueError)):
            writer.commit()
    assert store.path("ns/keep").read_bytes() == b"old"
    assert [p.name for p in store.path("ns/keep").parent.iterdir() if p.name.startswith(".tmp")] == []


def test_a_failed_write_leaves_no_file(store: LocalBlobStore) -> None:
    store.put_bytes("ns/keep", b"old")
    with pytest.raises(ConnectionError):
        store.put_stream("ns/keep", _Exploding())  # type: ignore[arg-type]
    assert store.path("ns/keep").read_bytes() == b"old"
    assert [p.name for p in store.path("ns/keep").parent.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a/./b", "a\\b", "", "a/b\x00"])
def test_keys_cannot_escape(store: LocalBlobStore, key: str) -> None:
    with pytest.raises(BadRequestError):
        store.put_bytes(key, b"x")


def test_delete_prefix(store: LocalBlobStore) -> None:
    for name in ("a", "b", "c"):
        store.put_bytes(f"ns1/bkt/{name}", b"1")
    store.put_bytes("ns2/bkt/a", b"1")
    assert store.delete_prefix("ns1/") == 3
    assert store.head("ns1/bkt/a") is None and store.head("ns2/bkt/a") is not None


def test_signatures_bind_method_key_type_and_expiry(store: LocalBlobStore) -> None:
    expires = int(time.time()) + 60
    signature = store.sign("PUT", "k/1", "video/mp4", expires)
    assert store.verify("PUT", "k/1", "video/mp4", expires, signature)
    assert not store.verify("GET", "k/1", "video/mp4", expires, signature)
    assert not store.verify("PUT", "k/2", "video/mp4", expires, signature)
    assert not store.verify("PUT", "k/1", "image/png", expires, signature)
    assert not store.verify("PUT", "k/1", "video/mp4", expires + 1, signature)
    past = int(time.time()) - 1
    assert not store.verify("PUT", "k/1", "video/mp4", past, store.sign("PUT", "k/1", "video/mp4", past))
    assert "signature=" in store.presigned_put_url("k/1", "video/mp4", 60)


def test_secret_is_created_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first and len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_still_hashes_large_chunks(store: LocalBlobStore) -> None:
    payload = hashlib.shake_256(b"fork").digest(1 << 20)
    store.put_bytes("ns/before-fork", payload)  # the parent's helper threads exist now
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a large write completes with the right MD5
        ok = False
        try:
            ok = store.put_bytes("ns/in-child", payload).etag == hashlib.md5(payload).hexdigest()
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung writing a blob")
    assert os.waitstatus_to_exitcode(done[1]) == 0
