"""Blobs in a local directory. The API serves its presigned URLs, signed with HMAC.

Writes stream to a temporary file beside the target and rename into place,
so a reader never sees half a file and a crash leaves no partial blob.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from strataflow.blobs.base import BlobInfo, WrittenBlob, validate_key

_CHUNK = 1 << 20
_ETAG_SUFFIX = ".etag"  # sidecar holding the MD5 etag, so HEAD needs no re-read


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
    def put_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> WrittenBlob:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            etag = md5.hexdigest()
            Path(tmp).replace(target)
            _write_sidecar(target, etag)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return WrittenBlob(key=key, size=size, etag=etag, sha256=sha.hexdigest())

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
        etag = sidecar.read_text().strip() if sidecar.is_file() else _md5_of(path)
        return BlobInfo(key=key, size=path.stat().st_size, etag=etag)

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

    def _url(self, method: str, key: str, content_type: str, expires_in: int) -> str:
        expires = int(time.time()) + int(expires_in)
        query = {"expires": str(expires), "signature": self.sign(method, key, content_type, expires)}
        return f"{self.base_url}/v1/blobs/{quote(validate_key(key))}?{urlencode(query)}"

    def presigned_get_url(self, key: str, expires_in: int) -> str:
        return self._url("GET", key, "", expires_in)

    def presigned_put_url(self, key: str, content_type: str, expires_in: int) -> str:
        return self._url("PUT", key, content_type, expires_in)


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


def _write_sidecar(target: Path, etag: str) -> None:
    sidecar = target.with_name(target.name + _ETAG_SUFFIX)
    tmp = sidecar.with_name(sidecar.name + f".{secrets.token_hex(4)}")
    tmp.write_text(etag)
    tmp.replace(sidecar)


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
