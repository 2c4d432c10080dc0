"""Blobs in a local directory. The API serves its presigned URLs, signed with HMAC.

Writes stream to a temporary file beside the target and rename into place,
so a reader never sees half a file and a crash leaves no partial blob.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Self
from urllib.parse import quote, urlencode

from strataflow.blobs.base import BlobInfo, WrittenBlob, validate_key
from strataflow.blobs.multipart import MultipartGoneError, PartInfo, Progress, multipart_etag
from strataflow.errors import NotFoundError

if TYPE_CHECKING:
    from hashlib import _Hash

Bytes = bytes | bytearray | memoryview  # what a writer takes; it is done with them when write returns
_CHUNK = 1 << 20
_ETAG_SUFFIX = ".etag"  # sidecar holding the etag and SHA-256, so HEAD needs no re-read
_JOIN_CHUNK = 8 << 20
_MULTIPART_ROOT = "_multipart"  # parts of open multipart uploads, one directory per upload
ANY_CONTENT_TYPE = "*"  # signed into part URLs: parts may be sent with any Content-Type
# A chunk this large has its MD5 taken on a helper thread while the writer's own thread writes it and
# takes its SHA-256: hashlib drops the GIL on large buffers, so the two hashes cost the slower one's
# time instead of their sum (they were the presigned PUT's ceiling, issue 24). Small chunks are not
# worth the hand-over.
_PARALLEL_HASH_MIN = 64 << 10


def _md5_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="blob-md5")


_MD5_THREADS = _md5_threads()


def _new_md5_threads_after_fork() -> None:
    # A forked child inherits the pool but none of its threads: work handed to it would wait forever.
    global _MD5_THREADS
    _MD5_THREADS = _md5_threads()


os.register_at_fork(after_in_child=_new_md5_threads_after_fork)


class LocalBlobStore:
    scheme = "local"

    def __init__(self, root: Path, secret: bytes, base_url: str) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_data_dir(cls, data_dir: Path, base_url: str) -> LocalBlobStore:
        return cls(data_dir / "blobs", load_or_create_secret(data_dir / "blob-secret"), base_url)

    # -- paths -------------------------------------------------------------
    def path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if self.root not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def uri(self, key: str) -> str:
        return f"local://{validate_key(key)}"

    # -- bytes ---------------------------------------------------------------
    def open_writer(self, key: str, *, md5: bool = True) -> LocalBlobWriter:
        """A blob written piece by piece (the presigned PUT route streams into one)."""
        target = self.path(key)
        if key.startswith(f"{_MULTIPART_ROOT}/") and not target.parent.is_dir():
            # a part sent after its upload was joined or aborted would only leave litter
            raise NotFoundError("This multipart upload is no longer open", {"key": key})
        return LocalBlobWriter(target, key, md5=md5)

    def put_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> WrittenBlob:
        with self.open_writer(key) as writer:
            while chunk := stream.read(_CHUNK):
                writer.write(chunk)
            return writer.commit()

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> WrittenBlob:
        import io

        return self.put_stream(key, io.BytesIO(data), content_type)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def iter_chunks(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        with self.open(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def head(self, key: str) -> BlobInfo | None:
        path = self.path(key)
        if not path.is_file():
            return None
        sidecar = path.with_name(path.name + _ETAG_SUFFIX)
        lines = sidecar.read_text().split() if sidecar.is_file() else [_md5_of(path)]
        sha256 = lines[1] if len(lines) > 1 else None
        return BlobInfo(key=key, size=path.stat().st_size, etag=lines[0], sha256=sha256)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + _ETAG_SUFFIX).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        target = self.path(prefix.rstrip("/"))
        if not target.exists():
            return 0
        if target.is_file():
            self.delete(prefix.rstrip("/"))
            return 1
        count = sum(1 for p in target.rglob("*") if p.is_file() and not p.name.endswith(_ETAG_SUFFIX))
        shutil.rmtree(target, ignore_errors=True)
        return count

    def check(self) -> bool:
        probe = self.root / f".probe-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False

    # -- presigned URLs --------------------------------------------------------
    def sign(self, method: str, key: str, content_type: str, expires: int) -> str:
        message = "\n".join([method.upper(), key, content_type, str(expires)]).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, method: str, key: str, content_type: str, expires: int, signature: str) -> bool:
        expected = self.sign(method, key, content_type, expires)
        return hmac.compare_digest(expected, signature) and time.time() <= expires

    def verify_put(self, key: str, content_type: str, expires: int, signature: str) -> bool:
        """A PUT is allowed with the exact Content-Type signed, or any if the URL was signed for any."""
        return self.verify("PUT", key, content_type, expires, signature) or self.verify(
            "PUT", key, ANY_CONTENT_TYPE, expires, signature
        )

    def _url(self, method: str, key: str, content_type: str, expires_in: int) -> str:
        expires = int(time.time()) + int(expires_in)
        query = {"expires": str(expires), "signature": self.sign(method, key, content_type, expires)}
        return f"{self.base_url}/v1/blobs/{quote(validate_key(key))}?{urlencode(query)}"

    def presigned_get_url(self, key: str, expires_in: int) -> str:
        return self._url("GET", key, "", expires_in)

    def presigned_put_url(self, key: str, content_type: str, expires_in: int) -> str:
        return self._url("PUT", key, content_type, expires_in)

    # -- multipart -------------------------------------------------------------
    # Parts are ordinary blobs under _multipart/<id>/, PUT through presigned URLs
    # like any other; joining streams them into the target in part order.
    def _parts_prefix(self, multipart_id: str) -> str:
        if not multipart_id.isalnum():
            raise MultipartGoneError(multipart_id)
        return f"{_MULTIPART_ROOT}/{multipart_id}"

    def create_multipart(self, key: str, content_type: str) -> str:
        validate_key(key)
        multipart_id = secrets.token_hex(16)
        self.path(self._parts_prefix(multipart_id)).mkdir(parents=True)
        return multipart_id

    def presigned_part_url(self, key: str, multipart_id: str, part_number: int, expires_in: int) -> str:
        part_key = f"{self._parts_prefix(multipart_id)}/{part_number:05d}"
        return self._url("PUT", part_key, ANY_CONTENT_TYPE, expires_in)

    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo]:
        prefix = self._parts_prefix(multipart_id)
        folder = self.path(prefix)
        try:
            handle = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:
            raise MultipartGoneError(multipart_id) from None
        try:
            # Shared with other readers, exclusive of a join: a concurrent confirm that is
            # joining and removing the parts can never be seen half-way.
            fcntl.flock(handle, fcntl.LOCK_SH)
            if not folder.is_dir():  # joined (and moved away) while we waited
                raise MultipartGoneError(multipart_id)
            parts = []
            for entry in sorted(folder.iterdir()):
                if entry.name.isdigit():
                    info = self.head(f"{prefix}/{entry.name}")
                    if info is not None:
                        parts.append(PartInfo(part_number=int(entry.name), size=info.size, etag=info.etag))
            return parts
        finally:
            os.close(handle)

    def complete_multipart(
        self, key: str, multipart_id: str, parts: list[PartInfo], progress: Progress | None = None
    ) -> BlobInfo:
        folder = self.path(self._parts_prefix(multipart_id))
        try:
            handle = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:
            return self._joined(key, multipart_id)
        try:
            # One join at a time per upload, across processes; a join that waited
            # finds the folder gone and answers what the first one joined.
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not folder.is_dir():
                return self._joined(key, multipart_id)
            written = self._join(key, folder, parts, progress)
            self.abort_multipart(key, multipart_id)
        finally:
            os.close(handle)
        return BlobInfo(key=key, size=written.size, etag=written.etag, sha256=written.sha256)

    def _join(self, key: str, folder: Path, parts: list[PartInfo], progress: Progress | None) -> WrittenBlob:
        done = 0
        # One buffer for the whole join: a fresh 8 MiB bytes per read cost its page faults every time.
        buffer = memoryview(bytearray(_JOIN_CHUNK))
        with self.open_writer(key, md5=False) as writer:
            for part in sorted(parts, key=lambda p: p.part_number):
                with (folder / f"{part.part_number:05d}").open("rb", buffering=0) as source:
                    while count := source.readinto(buffer):
                        writer.write(buffer[:count])
                        done += count
                        if progress is not None:
                            progress(done)
            return writer.commit(etag=multipart_etag([p.etag for p in parts]))

    def _joined(self, key: str, multipart_id: str) -> BlobInfo:
        joined = self.head(key)
        if joined is None:
            raise MultipartGoneError(multipart_id)
        return joined

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        folder = self.path(self._parts_prefix(multipart_id))
        trash = folder.with_name(f".gone-{multipart_id}-{secrets.token_hex(4)}")
        try:
            folder.rename(trash)  # atomic: a reader sees every part or no upload at all
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)


class LocalBlobWriter:
    """One blob being written in pieces: bytes go to a temporary file beside the target,
    hashed as they pass, and `commit` renames it into place (a reader never sees half a file)."""

    def __init__(self, target: Path, key: str, *, md5: bool = True) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.size = 0
        self._target = target
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._sha = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        self._tmp = Path(tmp)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._behind: _WriteBehind | None = None  # started by the first `write_behind`

    def write(self, chunk: Bytes) -> None:
        self.write_many((chunk,))

    def write_many(self, chunks: Sequence[Bytes]) -> None:
        """Write `chunks` in order. The PUT route hands over the pieces it received as they came:
        joining them first cost a copy of every byte (and the fresh pages it touched), and one
        hand-over to the MD5 thread per batch instead of per piece keeps the GIL traffic low."""
        assert self._file is not None, "writer already closed"
        size = sum(len(chunk) for chunk in chunks)
        beside = None
        if self._md5 is not None:
            if size >= _PARALLEL_HASH_MIN:
                beside = _MD5_THREADS.submit(_update_each, self._md5, chunks)
            else:
                _update_each(self._md5, chunks)
        try:
            for chunk in chunks:
                self._file.write(chunk)
                self._sha.update(chunk)
        finally:
            if beside is not None:
                beside.result()  # this batch's MD5 ends before the next one's starts: the digest sees them in order
        self.size += size

    def write_behind(self, chunks: Sequence[Bytes]) -> Future[None]:
        """Queue `chunks` to be written and hashed after those queued before, and return at once.

        The presigned PUT route hands each batch it receives here and goes on receiving. With one
        batch at a time, the event loop stopped reading the socket while a batch went to disk, and
        0.4-0.6 of the two cores stood idle (issue 24). Here the MD5 and the write + SHA-256 each
        run on a thread of this writer's own, in order, so receiving, the MD5 (the slowest pass)
        and the disk overlap. The future ends when these bytes are written and both hashes hold
        them. After a failure, later batches are not written, and their futures fail with it.
        """
        assert self._file is not None, "writer already closed"
        if self._behind is None:
            self._behind = _WriteBehind(self._md5 is not None)
        self.size += sum(len(chunk) for chunk in chunks)
        return self._behind.submit(self._md5, self._write_and_sha, chunks)

    def _write_and_sha(self, chunks: Sequence[Bytes]) -> None:
        assert self._file is not None, "writer already closed"
        for chunk in chunks:
            self._file.write(chunk)
            self._sha.update(chunk)

    def _settle(self) -> None:
        """Wait for the queued batches; raise the first failure among them."""
        if self._behind is not None:
            behind, self._behind = self._behind, None
            behind.close()

    def commit(self, etag: str | None = None) -> WrittenBlob:
        """Make the blob visible. `etag` replaces the MD5 (multipart joins know theirs)."""
        assert self._file is not None, "writer already closed"
        self._settle()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        etag = etag or (self._md5.hexdigest() if self._md5 is not None else "")
        sha256 = self._sha.hexdigest()
        self._tmp.replace(self._target)
        _write_sidecar(self._target, etag, sha256)
        return WrittenBlob(key=self.key, size=self.size, etag=etag, sha256=sha256)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the batches' failure, if any, was the caller's to see
            self._settle()  # nothing may still be writing into the file about to go
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a no-op after commit; otherwise nothing half-written stays behind


class _WriteBehind:
    """A writer's two ordered lanes: the MD5, and the disk write with the SHA-256.

    Each lane is one thread, so its batches run in the order given: a digest must see the bytes
    in order, and so must the file. hashlib and file writes let go of the GIL on large buffers,
    so the lanes and the event loop run on separate cores.
    """

    def __init__(self, md5: bool) -> None:
        self._md5_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-md5") if md5 else None
        self._disk_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-disk")
        self._failure: BaseException | None = None

    def submit(
        self, md5: _Hash | None, write: Callable[[Sequence[Bytes]], None], chunks: Sequence[Bytes]
    ) -> Future[None]:
        done: Future[None] = Future()
        # Running from the start, so it cannot be canceled: a caller that stops waiting (the PUT's
        # client went away) leaves the batch to finish, and `close` still waits for it.
        done.set_running_or_notify_cancel()
        lanes = [self._disk_lane.submit(self._unless_failed, write, chunks)]
        if self._md5_lane is not None and md5 is not None:
            lanes.append(self._md5_lane.submit(self._unless_failed, partial(_update_each, md5), chunks))
        waiting = [len(lanes)]
        lock = threading.Lock()

        def lane_done(_: Future[None]) -> None:
            with lock:
                waiting[0] -= 1
                if waiting[0]:
                    return
            failures = [lane.exception() for lane in lanes if lane.exception() is not None]
            if failures:
                done.set_exception(failures[0])
            else:
                done.set_result(None)

        for lane in lanes:
            lane.add_done_callback(lane_done)
        return done

    def _unless_failed(self, step: Callable[[Sequence[Bytes]], None], chunks: Sequence[Bytes]) -> None:
        if self._failure is not None:  # an earlier batch failed: the blob is lost, write no more of it
            raise self._failure
        try:
            step(chunks)
        except BaseException as failure:
            self._failure = failure
            raise

    def close(self) -> None:
        for lane in (self._md5_lane, self._disk_lane):
            if lane is not None:
                lane.shutdown(wait=True)
        if self._failure is not None:
            raise self._failure


def load_or_create_secret(path: Path) -> bytes:
    """The server's signing secret: made once, kept in the data dir, readable by us alone."""
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_or_create_secret(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex())
        handle.flush()
        os.fsync(handle.fileno())
    return secret


def _write_sidecar(target: Path, etag: str, sha256: str) -> None:
    sidecar = target.with_name(target.name + _ETAG_SUFFIX)
    tmp = sidecar.with_name(sidecar.name + f".{secrets.token_hex(4)}")
    tmp.write_text(f"{etag}\n{sha256}\n")
    tmp.replace(sidecar)


def _update_each(digest: _Hash, chunks: Sequence[Bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
