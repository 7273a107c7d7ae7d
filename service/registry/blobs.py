"""Content-addressed blob storage: every file is stored once, under the sha256 of its bytes.

Local: a blob is written to a temporary file, flushed to disk, then renamed into place, so
a crash never leaves a half-written blob under a real name (as in the Hugging Face cache).

S3 (any S3-compatible store): the bytes are hashed while spooled to a temporary file, the
upload is skipped when the object already exists, and every put checks the stored object's
size and sha256 (kept in its metadata) before returning, so a registry row committed after
the put never points at a missing or partial object.

Both stores list what they hold (blobs and leftovers of interrupted writes) for `warmzoo fsck`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

CHUNK = 1024 * 1024
SPOOL_BYTES = 8 * CHUNK  # an S3 upload larger than this is spooled through a temporary file
_SHA256 = re.compile(r"[0-9a-f]{64}")
TEMP_PREFIX = ".incoming-"
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredBlob:
    """A blob as listed: `sha256` is the name it is stored under (its content may disagree)."""

    sha256: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Leftover:
    """What an interrupted write left behind: a local temporary file or an unfinished S3 multipart upload."""

    name: str
    modified: datetime


class BlobStoreFull(OSError):
    """The store has no space (or quota) left; the write was undone."""


class BlobStore(Protocol):
    """Where file contents live; the registry database only holds their sha256."""

    def put_bytes(self, data: bytes) -> Blob: ...

    def put_file(self, source: BinaryIO) -> Blob:
        """Store a stream, hashing it on the way; the source is read once, in chunks."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """Read a stored blob; KeyError when absent."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent blobs are not an error."""
        ...

    def list(self) -> Iterator[StoredBlob]:
        """Every blob stored under a sha256 name, in no particular order."""
        ...

    def leftovers(self) -> Iterator[Leftover]:
        """Remains of writes that never finished (a crash mid-put)."""
        ...

    def remove_leftover(self, name: str) -> None: ...


class LocalBlobStore:
    """Blobs in a directory, sharded as `ab/cd/abcd...` to keep directories small."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise KeyError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_bytes(self, data: bytes) -> Blob:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> Blob:
        digest = hashlib.sha256()
        size = 0
        try:
            fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.root)
        except OSError as exc:
            _raise_if_full(exc)
            raise
        try:
            with os.fdopen(fd, "wb") as temp:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    temp.write(chunk)
                    size += len(chunk)
                temp.flush()
                os.fsync(temp.fileno())
            blob = Blob(digest.hexdigest(), size)
            target = self.path(blob.sha256)
            if target.exists():  # same content already stored: keep the old file, fresh for fsck's grace period
                os.unlink(temp_name)
                os.utime(target)
                return blob
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
            _fsync_dir(target.parent)
            return blob
        except BaseException as exc:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
            if isinstance(exc, OSError):
                _raise_if_full(exc)
            raise

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise KeyError(f"blob {sha256} is not stored") from None

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except KeyError:
            return False

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise KeyError(f"blob {sha256} is not stored") from None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("??/??/*"):
            if _SHA256.fullmatch(path.name) and path.is_file():
                stat = path.stat()
                yield StoredBlob(path.name, stat.st_size, _utc(stat.st_mtime))

    def leftovers(self) -> Iterator[Leftover]:
        for path in self.root.glob(f"{TEMP_PREFIX}*"):
            yield Leftover(path.name, _utc(path.stat().st_mtime))

    def remove_leftover(self, name: str) -> None:
        if not name.startswith(TEMP_PREFIX) or "/" in name:
            raise KeyError(f"not a temporary file of this store: {name!r}")
        (self.root / name).unlink(missing_ok=True)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _raise_if_full(exc: OSError) -> None:
    if exc.errno in _FULL:
        where = exc.filename or "its directory"
        raise BlobStoreFull(exc.errno, f"{os.strerror(exc.errno)} (blob store at {where})") from exc


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobIntegrityError(OSError):
    """A stored object does not hold what was put: wrong size or sha256."""


class S3BlobStore:
    """Blobs in an S3 bucket under `prefix`, sharded as `<prefix>/ab/cd/abcd...`.

    Credentials, region and endpoint come from boto3's usual sources (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...) unless `endpoint_url`
    or a ready `client` is given."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, client: Any = None) -> None:
        if not bucket:
            raise ValueError("an s3:// blob store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3BlobStore:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix, endpoint_url=endpoint_url)

    def key(self, sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise KeyError(f"not a sha256 digest: {sha256!r}")
        shard = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{shard}" if self.prefix else shard

    def put_bytes(self, data: bytes) -> Blob:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> Blob:
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            blob = Blob(digest.hexdigest(), size)
            key = self.key(blob.sha256)
            if self._verified(key, blob):  # same content already stored: keep the old object
                return blob
            spool.seek(0)
            self.client.upload_fileobj(
                spool,  # type: ignore[arg-type]
                self.bucket,
                key,
                ExtraArgs={"Metadata": {"sha256": blob.sha256}, "ContentType": "application/octet-stream"},
            )
        if not self._verified(key, blob):
            raise BlobIntegrityError(f"s3://{self.bucket}/{key} was uploaded but does not hold blob {blob.sha256}")
        return blob

    def _verified(self, key: str, blob: Blob) -> bool:
        """Whether the object exists with this blob's size and sha256 (False when absent)."""
        head = self._head(key)
        if head is None:
            return False
        return head["ContentLength"] == blob.size and head.get("Metadata", {}).get("sha256") == blob.sha256

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    def open(self, sha256: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _not_found(exc):
                raise KeyError(f"blob {sha256} is not stored") from None
            raise
        return response["Body"]  # type: ignore[return-value]  # a StreamingBody: read(n), close, `with`

    def exists(self, sha256: str) -> bool:
        try:
            return self._head(self.key(sha256)) is not None
        except KeyError:
            return False

    def size(self, sha256: str) -> int:
        head = self._head(self.key(sha256))
        if head is None:
            raise KeyError(f"blob {sha256} is not stored")
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))  # absent: S3 answers 204 too

    def list(self) -> Iterator[StoredBlob]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if _SHA256.fullmatch(name) and item["Key"] == self.key(name):
                    yield StoredBlob(name, int(item["Size"]), item["LastModified"].astimezone(UTC))

    def leftovers(self) -> Iterator[Leftover]:
        """Unfinished multipart uploads (they hold storage until aborted), named `key|upload id`."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield Leftover(f"{upload['Key']}|{upload['UploadId']}", upload["Initiated"].astimezone(UTC))

    def remove_leftover(self, name: str) -> None:
        key, _, upload_id = name.partition("|")
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)


def _not_found(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code")) in {"404", "NoSuchKey", "NotFound"}


def open_blob_store(location: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    """The blob store named by the `blob_store` setting: a directory path, file:// URL or
    s3://bucket/prefix (endpoint: `s3_endpoint_url`, else boto3's AWS_ENDPOINT_URL or AWS)."""
    if location.startswith("file://"):
        return LocalBlobStore(location.removeprefix("file://"))
    if location.startswith("s3://"):
        return S3BlobStore.from_url(location, endpoint_url=s3_endpoint_url)
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ValueError(f"blob_store {location!r}: the {scheme}:// scheme is not supported; use a path or s3://")
    return LocalBlobStore(location)
