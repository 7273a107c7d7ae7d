"""`registry.fsck` on a damaged zoo, for the local and the S3 blob store (and both databases):
every kind of damage is reported, nothing changes without `repair`, and a repair leaves only
what cannot be recovered."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.snapshots import store_state
from warmzoo.service.core.config import Settings
from warmzoo.service.registry import datasets
from warmzoo.service.registry.blobs import BlobStore, LocalBlobStore, S3BlobStore, StoredBlob
from warmzoo.service.registry.fsck import fsck
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import DatasetRow

LATER = datetime.now(UTC) + timedelta(hours=2)  # when every blob and leftover is past the grace period


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return S3BlobStore(request.getfixturevalue("s3_bucket"), "zoo")


@pytest.fixture
def zoo(registry: Registry, store: BlobStore) -> Iterator[Registry]:
    """Two versions (one with its state_dict.pt produced) and a data set, on `store`."""
    zoo = Registry(registry.session, store)
    first = zoo.publish_version("fsck", tiny_spec(), tiny_weights(seed=1))
    zoo.get_or_create_file(first, "state_dict.pt")
    zoo.publish_version("fsck", tiny_spec(), tiny_weights(seed=2))
    array = io.BytesIO()
    np.save(array, np.zeros((4, 5, 2), np.float32))
    datasets.store(zoo.session, store, Settings(), array.getvalue(), "zeros", None)
    yield zoo


def files(zoo: Registry, number: int) -> dict[str, str]:
    return {f.name: f.sha256 for f in zoo.resolve("fsck", number).files}


def corrupt(store: BlobStore, sha256: str) -> None:
    """Replace a blob's bytes, keeping its name."""
    if isinstance(store, LocalBlobStore):
        store.path(sha256).write_bytes(b"bit rot")
    else:
        assert isinstance(store, S3BlobStore)
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha256), Body=b"bit rot")


def leave_leftover(store: BlobStore) -> None:
    """What a write killed half-way leaves."""
    if isinstance(store, LocalBlobStore):
        (store.root / ".incoming-crashed").write_bytes(b"half a blob")
    else:
        assert isinstance(store, S3BlobStore)
        store.client.create_multipart_upload(Bucket=store.bucket, Key=store.key("e" * 64))


def problems(zoo: Registry, **options: object) -> Counter[str]:
    return Counter(f.problem for f in fsck(zoo.session, zoo.blobs, **options).findings)  # type: ignore[arg-type]


def test_a_healthy_zoo_is_clean(zoo: Registry) -> None:
    report = fsck(zoo.session, zoo.blobs, repair=True, now=LATER)
    assert report.findings == [] and report.blobs == 6 and report.rows == 6  # 2 x (weights, card) + state dict + data


def test_damage_is_reported_then_repaired(zoo: Registry, settings: Settings) -> None:
    one, two = files(zoo, 1), files(zoo, 2)
    zoo.blobs.delete(one["state_dict.pt"])
    zoo.blobs.delete(one["README.md"])
    corrupt(zoo.blobs, two["weights.safetensors"])
    zoo.blobs.delete(zoo.session.scalars(select(DatasetRow.sha256)).one())
    orphan = zoo.blobs.put_bytes(b"written, then the publisher crashed before its row")
    leave_leftover(zoo.blobs)

    damaged = store_state(settings.database_url, zoo.blobs)
    expected = Counter(missing_file=1, missing_card=1, corrupt_blob=1, missing_dataset=1)
    # young orphans and leftovers may be writes in flight (moto dates every multipart upload 2010)
    in_flight_looks_old = Counter(leftover=1) if isinstance(zoo.blobs, S3BlobStore) else Counter()
    assert problems(zoo) == expected + in_flight_looks_old
    assert problems(zoo, now=LATER) == expected + Counter(orphan_blob=1, leftover=1)
    assert store_state(settings.database_url, zoo.blobs) == damaged  # reporting changes nothing

    report = fsck(zoo.session, zoo.blobs, repair=True, now=LATER)
    assert [(f.problem, f.subject.split()[0]) for f in report.unresolved] == [("missing_weights", "fsck:2")]
    assert not zoo.blobs.exists(orphan.sha256) and list(zoo.blobs.leftovers()) == []
    assert problems(zoo, repair=True, now=LATER) == Counter(missing_weights=1)  # unrecoverable: reported every time

    zoo.session.expire_all()
    repaired = zoo.resolve("fsck", 1)
    assert "state_dict.pt" not in files(zoo, 1) and zoo.blobs.exists(files(zoo, 1)["README.md"])
    assert zoo.blobs.exists(zoo.get_or_create_file(repaired, "state_dict.pt").sha256)  # produced again
    assert datasets.list_datasets(zoo.session, 10, 0).total == 0


class ListedTooEarly:
    """The store as fsck sees it when every blob was written just after its listing."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def list(self) -> Iterator[StoredBlob]:
        return iter(())

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_publishes_racing_the_listing_are_not_damage(zoo: Registry) -> None:
    report = fsck(zoo.session, ListedTooEarly(zoo.blobs), repair=True, now=LATER)  # type: ignore[arg-type]
    assert report.findings == [] and datasets.list_datasets(zoo.session, 10, 0).total == 1
