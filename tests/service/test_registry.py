"""The registry service layer over a real database and blob directory (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors
from sqlalchemy import func, select

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.threads import run_in_threads
from warmzoo.models.onnx import export
from warmzoo.models.network import build_network
from warmzoo.models.weights import read_safetensors
from warmzoo.service.api.errors import HTTP_STATUS
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.registry import artifacts
from warmzoo.service.registry.blobs import Blob, LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.registry import LATEST, ModelFilter, Registry, VersionRef
from warmzoo.service.registry.tables import FileRow, ModelRow, VersionRow


def publish(registry: Registry, name: str, seed: int = 0, **fields: object) -> VersionRow:
    spec = fields.pop("spec", tiny_spec())
    return registry.publish_version(name, spec, tiny_weights(spec, seed), **fields)  # type: ignore[arg-type]


def test_publish_stores_content_addressed_weights_and_card(registry: Registry) -> None:
    version = publish(registry, "gru-a", metrics={"vaa_before": 1 / 32, "vaa_after": 0.5}, seed=7, device="cpu")
    assert version.number == 1 and version.model.name == "gru-a"
    files = {f.name: f for f in version.files}
    assert set(files) == {"weights.safetensors", "README.md"}
    weights = registry.read(files["weights.safetensors"].sha256)
    assert hashlib.sha256(weights).hexdigest() == version.sha256 == files["weights.safetensors"].sha256
    _, metadata = read_safetensors(weights)
    assert metadata["spec"] == tiny_spec().model_dump_json()  # stored files are self-describing
    card = registry.read(files["README.md"].sha256).decode()
    assert "# gru-a v1" in card and "0.5" in card
    assert version.metrics == {"vaa_before": 1 / 32, "vaa_after": 0.5, "vaa_star_history": []}


def test_versions_are_numbered_per_model_and_latest_follows(registry: Registry) -> None:
    assert [publish(registry, "a", seed=s).number for s in range(3)] == [1, 2, 3]
    assert publish(registry, "b").number == 1
    assert registry.resolve("a", LATEST).number == 3
    assert registry.resolve("a", "2").number == 2 and registry.resolve("a", 1).number == 1


def test_versions_are_immutable(registry: Registry) -> None:
    version = publish(registry, "frozen")
    version.seed = 99
    with pytest.raises(ValueError, match="immutable"):
        registry.session.commit()
    registry.session.rollback()
    assert registry.resolve("frozen", 1).seed is None


def test_concurrent_publishers_get_distinct_gapless_numbers(settings: Settings, registry: Registry) -> None:
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    blobs = LocalBlobStore(settings.blob_store)
    weights = tiny_weights()
    numbers: list[int] = []
    start = threading.Barrier(6)

    def publisher(_: int) -> None:
        with sessions() as session:
            start.wait()
            for _ in range(2):
                numbers.append(Registry(session, blobs).publish_version("raced", tiny_spec(), weights).number)

    run_in_threads(publisher, 6)
    engine.dispose()
    assert sorted(numbers) == list(range(1, 13))
    assert registry.resolve("raced", LATEST).number == 12
    assert registry.session.scalar(select(func.count()).select_from(ModelRow)) == 1


def test_resolve_errors_name_the_field(registry: Registry) -> None:
    publish(registry, "known")
    cases = [("nope", "1", "name", 404), ("known", "9", "version", 404), ("known", "prod", "version", 404)]
    for name, version, field, status in cases:
        with pytest.raises(WarmzooError) as caught:
            registry.resolve(name, version)
        assert (caught.value.field, HTTP_STATUS[caught.value.reason]) == (field, status)
    with pytest.raises(WarmzooError) as caught:
        registry.resolve("known", "Not An Alias!")
    assert (HTTP_STATUS[caught.value.reason], caught.value.field) == (422, "version")


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "a" * 101, "spa ce", "sl/ash"])
def test_invalid_names_are_refused_before_anything_is_stored(registry: Registry, name: str) -> None:
    with pytest.raises(WarmzooError) as caught:
        publish(registry, name)
    assert (HTTP_STATUS[caught.value.reason], caught.value.field, caught.value.code) == (422, "name", "invalid_name")
    assert list(Path(registry.blobs.root).rglob("*.*")) == []  # type: ignore[attr-defined]


def bare_safetensors(tensors: dict[str, torch.Tensor]) -> bytes:
    """A safetensors file as other tools write it: no spec in the metadata."""
    return save_safetensors(tensors)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("wider", ["layers.0.rnn.weight_ih_l0", "[18, 2]", "[12, 2]"]),
        ("missing", ["readout.bias", "missing"]),
        ("extra", ["surplus", "not part of"]),
        ("nan", ["readout.weight", "NaN"]),
    ],
)
def test_bad_weights_name_the_tensor_and_store_nothing(registry: Registry, change: str, words: list[str]) -> None:
    spec = tiny_spec() if change != "wider" else tiny_spec(hidden_size=6)
    tensors = dict(build_network(spec, seed=0).state_dict())
    if change == "missing":
        del tensors["readout.bias"]
    elif change == "extra":
        tensors["surplus"] = torch.zeros(2)
    elif change == "nan":
        tensors["readout.weight"][0, 0] = float("nan")
    with pytest.raises(WarmzooError) as caught:
        registry.publish_version("bad", tiny_spec(), bare_safetensors(tensors))
    assert (HTTP_STATUS[caught.value.reason], caught.value.field, caught.value.code) == (422, "weights", "invalid_weights")
    assert all(word in caught.value.message for word in words), caught.value.message
    assert registry.session.scalar(select(func.count()).select_from(VersionRow)) == 0
    assert [p for p in Path(registry.blobs.root).rglob("*") if p.is_file()] == []  # type: ignore[attr-defined]


def test_safetensors_without_metadata_are_accepted_and_made_self_describing(registry: Registry) -> None:
    version = registry.publish_version(
        "bare", tiny_spec(), bare_safetensors(dict(build_network(tiny_spec()).state_dict()))
    )
    assert read_safetensors(registry.read(version.sha256))[1]["spec"] == tiny_spec().model_dump_json()


def test_garbage_is_not_safetensors(registry: Registry) -> None:
    for garbage in (b"", b"\x80\x04pickle", (10**9).to_bytes(8, "little") + b"{}"):
        with pytest.raises(WarmzooError) as caught:
            registry.publish_version("junk", tiny_spec(), garbage)
        assert caught.value.field == "weights" and "safetensors" in caught.value.message


def test_spec_mismatch_with_file_metadata_is_refused(registry: Registry) -> None:
    with pytest.raises(WarmzooError) as caught:
        registry.publish_version("mismatch", tiny_spec(cell="lstm"), tiny_weights(tiny_spec(cell="chrono")))
    assert (caught.value.field, caught.value.code) == ("spec", "spec_mismatch")


class FailingStore(LocalBlobStore):
    """Fails on the second blob of a publish (the card), after the weights are stored."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    def put_bytes(self, data: bytes) -> Blob:
        self.puts += 1
        if self.puts == 2:
            raise OSError("disk full")
        return super().put_bytes(data)


def test_no_row_without_its_blobs(registry: Registry, tmp_path: Path) -> None:
    failing = Registry(registry.session, FailingStore(tmp_path / "blobs"))
    with pytest.raises(OSError):
        publish(failing, "half")
    registry.session.rollback()
    assert registry.session.scalar(select(func.count()).select_from(ModelRow)) == 0
    publish(registry, "whole")
    for row in registry.session.scalars(select(FileRow)):
        assert registry.blobs.exists(row.sha256)


def test_in_transaction_hook_commits_with_the_version_or_not_at_all(registry: Registry) -> None:
    seen: list[int] = []
    publish(registry, "hooked", in_transaction=lambda row: seen.append(row.number))
    assert seen == [1]

    def fail(row: VersionRow) -> None:
        raise RuntimeError("job was canceled meanwhile")

    with pytest.raises(RuntimeError):
        publish(registry, "hooked", seed=1, in_transaction=fail)
    with pytest.raises(RuntimeError):
        publish(registry, "hooked-new", in_transaction=fail)
    assert registry.resolve("hooked", LATEST).number == 1
    assert registry.session.scalar(select(func.count()).select_from(ModelRow)) == 1


def test_lineage_description_tags(registry: Registry) -> None:
    publish(registry, "parent")
    child = publish(
        registry,
        "child",
        base=VersionRef("parent", LATEST),
        description="warmed",
        tags=["paper", "gru"],
        warmup={"steps": 5},
    )
    assert child.base is not None and (child.base.model.name, child.base.number) == ("parent", 1)
    card = next(f for f in child.files if f.name == "README.md")
    assert "Warmed up from `parent` version 1." in registry.read(card.sha256).decode()
    model = registry.get_model("child")
    assert model.description == "warmed" and [t.name for t in model.tags] == ["gru", "paper"]
    with pytest.raises(WarmzooError) as caught:
        publish(registry, "orphan", base=VersionRef("parent", 5))
    assert caught.value.field == "base.version"


def test_aliases(registry: Registry) -> None:
    for seed in range(2):
        publish(registry, "al", seed=seed)
    assert registry.set_alias("al", "prod", 1).version.number == 1
    assert registry.resolve("al", "prod").number == 1
    assert registry.set_alias("al", "prod", 2).version.number == 2  # moved, not duplicated
    publish(registry, "al", seed=5)
    assert registry.resolve("al", "prod").number == 2 and registry.resolve("al", LATEST).number == 3
    registry.delete_alias("al", "prod")
    with pytest.raises(WarmzooError):
        registry.resolve("al", "prod")
    for call in (lambda: registry.set_alias("al", LATEST, 1), lambda: registry.delete_alias("al", LATEST)):
        with pytest.raises(WarmzooError) as caught:
            call()
        assert caught.value.code == "reserved_alias"
    with pytest.raises(WarmzooError) as caught:
        registry.set_alias("al", "prod", 9)
    assert HTTP_STATUS[caught.value.reason] == 404


def test_tags(registry: Registry) -> None:
    publish(registry, "tagged")
    assert [t.name for t in registry.add_tags("tagged", ["b", "a", "b"]).tags] == ["a", "b"]
    assert [t.name for t in registry.add_tags("tagged", ["a", "c"]).tags] == ["a", "b", "c"]
    registry.remove_tag("tagged", "b")
    assert [t.name for t in registry.get_model("tagged").tags] == ["a", "c"]
    with pytest.raises(WarmzooError) as caught:
        registry.add_tags("tagged", ["Bad Tag"])
    assert caught.value.field == "tags.0"


def test_search_filters_apply_to_latest(registry: Registry) -> None:
    publish(registry, "gru-small", metrics={"vaa_after": 0.2}, data={"task": "denoising"}, description="Noise")
    publish(
        registry, "lstm-big", spec=tiny_spec(cell="lstm", hidden_size=8), metrics={"vaa_after": 0.7}, tags=["paper"]
    )
    publish(registry, "brc", spec=tiny_spec(cell="brc"), metrics={"vaa_after": 0.9}, data={"task": "copy_first_input"})
    publish(registry, "brc", spec=tiny_spec(cell="brc"), metrics={"vaa_after": 0.1})  # latest is now 0.1

    def names(**filters: object) -> list[str]:
        page = registry.search(ModelFilter(**filters), limit=10, offset=0)  # type: ignore[arg-type]
        assert page.total == len(page.items)
        return [model.name for model, _ in page.items]

    assert names() == ["brc", "gru-small", "lstm-big"]
    assert names(cell="lstm") == ["lstm-big"]
    assert names(hidden_size=4) == ["brc", "gru-small"]
    assert names(task="denoising") == ["gru-small"]
    assert names(task="copy_first_input") == []  # only v1 of brc had it
    assert names(tag="paper") == ["lstm-big"]
    assert names(vaa_after_min=0.5) == ["lstm-big"]
    assert names(vaa_after_max=0.15) == ["brc"]
    assert names(q="NOISE") == ["gru-small"] and names(q="big") == ["lstm-big"]
    assert names(q="%") == [] and names(q="_") == []  # LIKE wildcards are literal
    assert [m.name for m, _ in registry.search(ModelFilter(), 10, 0, "-vaa_after").items] == [
        "lstm-big",
        "gru-small",
        "brc",
    ]


def test_pagination(registry: Registry) -> None:
    for i in range(5):
        publish(registry, f"m{i}")
    pages = [registry.search(ModelFilter(), limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [m.name for page in pages for m, _ in page.items] == [f"m{i}" for i in range(5)]
    assert {page.total for page in pages} == {5}
    for seed in range(3):
        publish(registry, "m0", seed=seed + 1)
    versions = registry.list_versions("m0", limit=2, offset=2)
    assert versions.total == 4 and [v.number for v in versions.items] == [3, 4]


def test_derived_files_are_produced_once_and_recorded(registry: Registry) -> None:
    version = publish(registry, "exp")
    onnx = registry.get_or_create_file(version, "model.onnx")
    assert onnx.details is not None and onnx.details["parity"]["passed"] is True
    assert hashlib.sha256(registry.read(onnx.sha256)).hexdigest() == onnx.sha256
    assert registry.get_or_create_file(version, "model.onnx").id == onnx.id
    with pytest.raises(WarmzooError) as caught:
        registry.get_or_create_file(version, "weights.bin")
    assert (HTTP_STATUS[caught.value.reason], caught.value.field) == (404, "file")


def test_concurrent_requests_produce_one_file(settings: Settings, registry: Registry) -> None:
    version_id = publish(registry, "race").id
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    blobs = LocalBlobStore(settings.blob_store)
    ids: list[int] = []

    def fetch(_: int) -> None:
        with sessions() as session:
            own = Registry(session, blobs)
            ids.append(own.get_or_create_file(session.get(VersionRow, version_id), "state_dict.pt").id)  # type: ignore[arg-type]

    run_in_threads(fetch, 4)
    engine.dispose()
    assert len(ids) == 4 and len(set(ids)) == 1


@pytest.fixture
def impossible_parity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real parity check, made impossible to pass; failures remembered by this test only."""
    monkeypatch.setattr(export, "TOLERANCE", 0.0)
    monkeypatch.setattr(export, "DRIFT_FACTOR", 0.0)
    monkeypatch.setattr(artifacts, "_FAILURES", artifacts._Failures(artifacts.REMEMBERED_FAILURES))


@pytest.mark.usefixtures("impossible_parity")
def test_failed_parity_is_an_error_not_a_file(registry: Registry) -> None:
    version = publish(registry, "unexportable")
    with pytest.raises(WarmzooError) as caught:
        registry.get_or_create_file(version, "model.onnx")
    assert caught.value.code == "export_parity_failed" and caught.value.field == "file"
    assert "disagrees with PyTorch by" in caught.value.message and "length" in caught.value.message
    assert registry.session.scalar(select(func.count()).select_from(FileRow).where(FileRow.name == "model.onnx")) == 0


@pytest.mark.usefixtures("impossible_parity")
def test_a_failed_export_is_remembered_per_version_and_file(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports: list[str] = []
    real_export = artifacts.export_onnx

    def counted(network: object, graph: str) -> object:
        exports.append(graph)
        return real_export(network, graph)  # type: ignore[arg-type]

    monkeypatch.setattr(artifacts, "export_onnx", counted)
    version = publish(registry, "unexportable")
    messages = []
    for name in ("model.onnx", "model.onnx", "model.onnx", "cell.onnx"):
        with pytest.raises(WarmzooError) as caught:
            registry.get_or_create_file(version, name)
        assert caught.value.code == "export_parity_failed"
        messages.append(caught.value.message)
    assert exports == ["model", "cell"]  # one export per file, not one per request
    assert messages[0] == messages[1] == messages[2] != messages[3]
