"""The blob store never shows a half-written blob and names every blob by its sha256."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from service.blobs import LocalBlobStore, open_blob_store


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".incoming-")]


def test_put_names_blobs_by_sha256_in_shards(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"warm" * 1000
    blob = store.put_bytes(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert store.path(blob.sha256) == tmp_path / blob.sha256[:2] / blob.sha256[2:4] / blob.sha256
    with store.open(blob.sha256) as f:
        assert f.read() == data
    assert store.exists(blob.sha256) and store.size(blob.sha256) == len(data)
    assert leftovers(tmp_path) == []


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    first = store.put_bytes(b"same")
    second = store.put_file(io.BytesIO(b"same"))
    assert first == second
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [store.path(first.sha256)]


def test_put_file_streams_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # several chunks
    blob = LocalBlobStore(tmp_path).put_file(io.BytesIO(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()


class Interrupted(io.RawIOBase):
    """A source that fails after a first chunk, like a connection dropped mid-upload."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("client went away")
        return b"x" * 1000


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ConnectionError):
        store.put_file(Interrupted())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_missing_and_malformed_names(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    absent = "0" * 64
    assert not store.exists(absent)
    with pytest.raises(KeyError):
        store.open(absent)
    with pytest.raises(KeyError):
        store.size(absent)
    assert not store.exists("../../etc/passwd")
    with pytest.raises(KeyError):
        store.open("../../etc/passwd")
    store.delete(absent)  # absent: not an error


def test_delete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    blob = store.put_bytes(b"gone soon")
    store.delete(blob.sha256)
    assert not store.exists(blob.sha256)


def test_open_blob_store_accepts_paths_and_file_urls(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(str(tmp_path / "a")), LocalBlobStore)
    assert isinstance(open_blob_store(f"file://{tmp_path / 'b'}"), LocalBlobStore)
    with pytest.raises(ValueError, match="s3:// scheme is not supported yet"):
        open_blob_store("s3://bucket/prefix")
