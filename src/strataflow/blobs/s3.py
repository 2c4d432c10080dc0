"""Blobs in any S3 API (AWS, MinIO, R2, moto). Presigned URLs come from S3 itself.

Keys are stored under the prefix of STRATAFLOW_BLOB_URL (s3://bucket/prefix).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

import boto3
from botocore.client import Config
from botocore.exceptions import BotoCoreError, ClientError

from strataflow.blobs.base import BlobInfo, WrittenBlob, validate_key
from strataflow.blobs.download import attachment, is_passive, media_type_of
from strataflow.blobs.multipart import MultipartGoneError, PartInfo, Progress
from strataflow.config import Settings
from strataflow.errors import BadRequestError

_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _HashingReader:
    """Wraps a stream so its SHA-256 and size are known once boto3 has read it all."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.sha.update(chunk)
        self.size += len(chunk)
        return chunk


class S3BlobStore:
    scheme = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        parsed = urlparse(settings.blob_url or "")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"STRATAFLOW_BLOB_URL must look like s3://bucket/prefix, not {settings.blob_url!r}")
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        return cls(client, parsed.netloc, parsed.path)

    # -- keys ------------------------------------------------------------------
    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    # -- bytes -----------------------------------------------------------------
    def put_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> WrittenBlob:
        reader = _HashingReader(stream)
        extra = {"ContentType": content_type} if content_type else {}
        self.client.upload_fileobj(reader, self.bucket, self._key(key), ExtraArgs=extra)
        info = self.head(key)
        assert info is not None, "object vanished right after its upload"
        return WrittenBlob(key=key, size=reader.size, etag=info.etag, sha256=reader.sha.hexdigest())

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> WrittenBlob:
        extra = {"ContentType": content_type} if content_type else {}
        response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        return WrittenBlob(
            key=key, size=len(data), etag=response["ETag"].strip('"'), sha256=hashlib.sha256(data).hexdigest()
        )

    def open(self, key: str) -> BinaryIO:
        response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return cast(BinaryIO, response["Body"])

    def iter_chunks(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def head(self, key: str) -> BlobInfo | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return BlobInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=response["ETag"].strip('"'),
            content_type=response.get("ContentType"),
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix.rstrip("/")) + "/"
        count = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                count += len(keys)
        return count

    def check(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except (ClientError, BotoCoreError):
            return False

    # -- presigned URLs ----------------------------------------------------------
    def presigned_get_url(self, key: str, expires_in: int) -> str:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        # S3 serves the type stored with the object; S3 cannot add nosniff or a CSP, but it can
        # be told (in the signed URL) to send anything not passive as a download.
        if not is_passive(media_type_of(key)):
            params["ResponseContentDisposition"] = attachment(key)
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires_in)))

    def presigned_put_url(self, key: str, content_type: str, expires_in: int) -> str:
        # ContentType is signed, so S3 refuses a PUT that sends another one.
        params = {"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type}
        return str(self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=int(expires_in)))

    # -- multipart (S3's own) ------------------------------------------------------
    def create_multipart(self, key: str, content_type: str) -> str:
        response = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key), ContentType=content_type)
        return str(response["UploadId"])

    def presigned_part_url(self, key: str, multipart_id: str, part_number: int, expires_in: int) -> str:
        params = {"Bucket": self.bucket, "Key": self._key(key), "UploadId": multipart_id, "PartNumber": part_number}
        return str(self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=int(expires_in)))

    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self._key(key), UploadId=multipart_id
            )
            for page in pages:
                parts.extend(
                    PartInfo(part_number=int(p["PartNumber"]), size=int(p["Size"]), etag=p["ETag"].strip('"'))
                    for p in page.get("Parts", [])
                )
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise MultipartGoneError(multipart_id) from None
            raise
        return sorted(parts, key=lambda p: p.part_number)

    def complete_multipart(
        self, key: str, multipart_id: str, parts: list[PartInfo], progress: Progress | None = None
    ) -> BlobInfo:
        listing = [
            {"PartNumber": p.part_number, "ETag": f'"{p.etag}"'} for p in sorted(parts, key=lambda p: p.part_number)
        ]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=multipart_id, MultipartUpload={"Parts": listing}
            )
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                joined = self.head(key)  # completed by an earlier call
                if joined is None:
                    raise MultipartGoneError(multipart_id) from None
                return joined
            if _code(exc) in {"EntityTooSmall", "InvalidPart", "InvalidPartOrder"}:
                raise BadRequestError(f"S3 refused to join the parts: {exc}", {"s3_error": _code(exc)}) from None
            raise
        joined = self.head(key)
        assert joined is not None, "joined object is missing"
        return joined

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=multipart_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise
