"""Content-addressed blob storage: every file is stored once, under the sha256 of its bytes.

A blob is written to a temporary file, flushed to disk, then renamed into place, so a
crash never leaves a half-written blob under a real name (as in the Hugging Face cache).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


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
        fd, temp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
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
            if target.exists():  # same content already stored: keep the old file
                os.unlink(temp_name)
                return blob
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
            _fsync_dir(target.parent)
            return blob
        except BaseException:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
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


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_blob_store(location: str) -> BlobStore:
    """The blob store named by the `blob_store` setting: a directory path or file:// URL."""
    if location.startswith("file://"):
        return LocalBlobStore(location.removeprefix("file://"))
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ValueError(f"blob_store {location!r}: the {scheme}:// scheme is not supported yet; use a directory path")
    return LocalBlobStore(location)
