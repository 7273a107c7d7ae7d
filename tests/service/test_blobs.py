"""The blob store never shows a half-written blob and names every blob by its sha256."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from warmzoo.service.registry.blobs import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each contract test runs on a blob directory and on a real S3-compatible server."""
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    return S3BlobStore(request.getfixturevalue("s3_bucket"), "zoo/blobs")


def stored(store: BlobStore) -> list[str]:
    """Every name the store holds (files or objects), to check that nothing else was left."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3BlobStore)
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def location(store: BlobStore, sha256: str) -> str:
    if isinstance(store, LocalBlobStore):
        return str(store.path(sha256).relative_to(store.root))
    assert isinstance(store, S3BlobStore)
    return store.key(sha256)


def test_put_names_blobs_by_sha256_in_shards(store: BlobStore) -> None:
    data = b"warm" * 1000
    blob = store.put_bytes(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    shards = f"{blob.sha256[:2]}/{blob.sha256[2:4]}/{blob.sha256}"
    assert stored(store) == [location(store, blob.sha256)]
    assert location(store, blob.sha256) == (shards if isinstance(store, LocalBlobStore) else f"zoo/blobs/{shards}")
    with store.open(blob.sha256) as f:
        assert f.read() == data
    assert store.exists(blob.sha256) and store.size(blob.sha256) == len(data)


def test_same_content_is_stored_once(store: BlobStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_file(io.BytesIO(b"same"))
    assert first == second
    assert stored(store) == [location(store, first.sha256)]


def test_put_file_streams_in_chunks(store: BlobStore) -> None:
    data = bytes(range(256)) * 20_000  # several chunks (and, on S3, spooled past memory)
    blob = store.put_file(io.BytesIO(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    with store.open(blob.sha256) as f:
        assert hashlib.sha256(f.read()).hexdigest() == blob.sha256


class Interrupted(io.RawIOBase):
    """A source that fails after a first chunk, like a connection dropped mid-upload."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("client went away")
        return b"x" * 1000


def test_failed_write_leaves_nothing_behind(store: BlobStore) -> None:
    with pytest.raises(ConnectionError):
        store.put_file(Interrupted())  # type: ignore[arg-type]
    assert stored(store) == []


def test_missing_and_malformed_names(store: BlobStore) -> None:
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


def test_delete(store: BlobStore) -> None:
    blob = store.put_bytes(b"gone soon")
    store.delete(blob.sha256)
    assert not store.exists(blob.sha256)
    assert stored(store) == []


def test_open_blob_store_accepts_paths_and_file_urls(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(str(tmp_path / "a")), LocalBlobStore)
    assert isinstance(open_blob_store(f"file://{tmp_path / 'b'}"), LocalBlobStore)
    s3 = open_blob_store("s3://bucket/some/prefix/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.client.meta.endpoint_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="needs a bucket"):
        open_blob_store("s3://")
    with pytest.raises(ValueError, match="gs:// scheme is not supported"):
        open_blob_store("gs://bucket/prefix")
