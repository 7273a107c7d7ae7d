"""The S3 blob store against a real S3-compatible server (moto's, started by the tests on
127.0.0.1): content addressing, verification before a row is registered, the registry and the
app end to end. The BlobStore contract itself runs on both stores in test_blobs.py."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.blobs import BlobIntegrityError, S3BlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import FileRow, ModelRow

pytestmark = pytest.mark.s3


def object_keys(store: S3BlobStore) -> list[str]:
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def download(store: S3BlobStore, sha256: str) -> bytes:
    """The object's bytes, fetched with a client of its own (not through the store)."""
    return boto3.client("s3").get_object(Bucket=store.bucket, Key=store.key(sha256))["Body"].read()


class CountingClient:
    """The real boto3 client, counting uploads."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.uploads = 0

    def upload_fileobj(self, *args: Any, **kwargs: Any) -> None:
        self.uploads += 1
        self.client.upload_fileobj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class TruncatingClient(CountingClient):
    """A store that acknowledges an upload but keeps only part of it (a partial object)."""

    def upload_fileobj(self, fileobj: Any, bucket: str, key: str, ExtraArgs: dict[str, Any]) -> None:  # noqa: N803
        self.uploads += 1
        self.client.put_object(Bucket=bucket, Key=key, Body=fileobj.read()[:-1], **ExtraArgs)


class MislabellingClient(CountingClient):
    """A store that keeps the right number of bytes under the wrong sha256."""

    def upload_fileobj(self, fileobj: Any, bucket: str, key: str, ExtraArgs: dict[str, Any]) -> None:  # noqa: N803
        self.uploads += 1
        self.client.put_object(Bucket=bucket, Key=key, Body=fileobj.read(), Metadata={"sha256": "0" * 64})


@pytest.fixture
def s3_registry(s3_bucket: str, tmp_path: Path) -> Any:
    settings = Settings(data_dir=tmp_path, blob_store=f"s3://{s3_bucket}/zoo")
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        yield session, s3_bucket
    engine.dispose()


def test_same_bytes_make_one_object_uploaded_once(s3_bucket: str) -> None:
    client = CountingClient(boto3.client("s3"))
    store = S3BlobStore(s3_bucket, "zoo", client=client)
    first = store.put_bytes(b"same bytes")
    second = store.put_bytes(b"same bytes")
    assert first == second and client.uploads == 1  # the second put finds the object and skips the upload
    assert object_keys(store) == [f"zoo/{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}"]
    head = store.client.head_object(Bucket=s3_bucket, Key=store.key(first.sha256))
    assert head["Metadata"]["sha256"] == first.sha256 and head["ContentLength"] == first.size
    assert download(store, first.sha256) == b"same bytes"


def test_put_file_larger_than_the_spool_is_uploaded_whole(s3_bucket: str) -> None:
    data = bytes(range(256)) * 50_000  # 12.8 MB: past the in-memory spool, and a multipart upload
    store = S3BlobStore(s3_bucket)
    blob = store.put_file(io.BytesIO(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest() and store.size(blob.sha256) == len(data)
    assert hashlib.sha256(download(store, blob.sha256)).hexdigest() == blob.sha256


@pytest.mark.parametrize("faulty", [TruncatingClient, MislabellingClient])
def test_an_object_that_fails_verification_is_an_error(s3_bucket: str, faulty: type[CountingClient]) -> None:
    store = S3BlobStore(s3_bucket, client=faulty(boto3.client("s3")))
    with pytest.raises(BlobIntegrityError, match="does not hold blob"):
        store.put_bytes(b"precious weights")
    # a good store later repairs it: the bad object does not count as "already stored"
    good = S3BlobStore(s3_bucket)
    blob = good.put_bytes(b"precious weights")
    assert download(good, blob.sha256) == b"precious weights"


def test_failed_verification_registers_nothing(s3_registry: Any) -> None:
    session, bucket = s3_registry
    broken = Registry(session, S3BlobStore(bucket, "zoo", client=TruncatingClient(boto3.client("s3"))))
    with pytest.raises(BlobIntegrityError):
        broken.publish_version("partial", tiny_spec(), tiny_weights())
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ModelRow)) == 0
    assert session.scalar(select(func.count()).select_from(FileRow)) == 0


def test_registry_publishes_into_s3(s3_registry: Any) -> None:
    session, bucket = s3_registry
    store = S3BlobStore(bucket, "zoo")
    registry = Registry(session, store)
    version = registry.publish_version("gru-s3", tiny_spec(), tiny_weights())
    files = {f.name: f for f in version.files}
    assert set(files) == {"weights.safetensors", "README.md"}
    for row in files.values():
        content = download(store, row.sha256)
        assert hashlib.sha256(content).hexdigest() == row.sha256 and len(content) == row.size
    assert hashlib.sha256(registry.read(version.sha256)).hexdigest() == version.sha256
    assert sorted(object_keys(store)) == sorted(store.key(row.sha256) for row in files.values())


def test_app_serves_files_and_inference_from_s3(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMZOO_BLOB_STORE", f"s3://{s3_bucket}/zoo")
    settings = Settings(data_dir=tmp_path, starter_catalogue=False, auth="off")  # the rest from the environment
    with TestClient(create_app(settings)) as client:
        store = client.app.state.blobs  # type: ignore[attr-defined]
        assert isinstance(store, S3BlobStore) and store.bucket == s3_bucket
        spec = tiny_spec()
        response = client.post(
            "/v1/models/from-s3/versions",
            data={"spec": spec.model_dump_json()},
            files={"weights": ("w.safetensors", tiny_weights(spec))},
        )
        assert response.status_code in (200, 201), response.text
        for name in ["weights.safetensors", "README.md", "model.onnx"]:
            response = client.get(f"/v1/models/from-s3/versions/1/files/{name}")
            assert response.status_code == 200, response.text
            digest = hashlib.sha256(response.content).hexdigest()
            assert response.headers["etag"] == f'"{digest}"' and store.exists(digest)
            assert download(store, digest) == response.content
        x = [0.5] * (1 * 3 * spec.input_size)
        body = {"inputs": [{"name": "input", "shape": [1, 3, spec.input_size], "datatype": "FP32", "data": x}]}
        response = client.post("/v2/models/from-s3/infer", json=body)
        assert response.status_code == 200, response.text
    assert not (tmp_path / "blobs").exists()  # nothing went to the local blob directory
    assert [p.suffix for p in (tmp_path / "onnx-cache").iterdir()] == [".onnx"]  # served from a local copy
