"""Hostile and broken input: every refusal is a 4xx JSON error naming the field, and leaves
no trace (no new row in any table, no new blob, no temporary file). User data is never
unpickled, so a pickle bomb disguised as weights or a data set runs nothing.

test_api_models.py and test_api_jobs.py cover the simpler cases (bad specs, names, a few bad
data sets); these are the malformed files, dtypes, paths, sizes and pickles.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from httpx import Response
from safetensors.torch import save as save_safetensors

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.snapshots import store_state
from warmzoo.models import weights as weights_module
from warmzoo.models.weights import read_safetensors
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry import datasets

SPEC = tiny_spec().model_dump_json()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite only: what is refused does not depend on the database (test_registry.py covers both).
    Auth off: keys and scopes are test_auth's subject, and every route must be reachable here."""
    return Settings(data_dir=tmp_path / "data", auth="off", rate_limit_per_s=0)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.post("/v1/models/kept/versions", data={"spec": SPEC}, files={"weights": ("w", tiny_weights())})
        yield client


@pytest.fixture
def refused(api: TestClient, settings: Settings) -> Callable[..., dict[str, Any]]:
    """refused(send, status, field, *words): `send()` must be answered `status` with a JSON error
    naming `field` and `words`, and leave every table and the blob store as they were."""

    def check(send: Callable[[], Response], status: int, field: str | None, *words: str) -> dict[str, Any]:
        before = store_state(settings.database_url, api.app.state.blobs)  # type: ignore[attr-defined]
        answer = send()
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["field"] == field, body
        for word in (field, *words) if field else words:
            assert word in body["error"], body
        assert store_state(settings.database_url, api.app.state.blobs) == before  # type: ignore[attr-defined]
        return body

    return check


def safetensors_with(change: Callable[[dict[str, torch.Tensor]], None]) -> bytes:
    """The tiny network's weights file (spec in its metadata) after `change` edits its tensors."""
    tensors, metadata = read_safetensors(tiny_weights())
    change(tensors)
    return save_safetensors(tensors, metadata=metadata)


def first_tensor(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        name = sorted(tensors)[0]
        tensors[name] = tensors[name].clone().fill_(value)

    return change


def cast(dtype: torch.dtype) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        for name in tensors:
            tensors[name] = tensors[name].to(dtype)

    return change


def extra(name: str) -> Callable[[dict[str, torch.Tensor]], None]:
    return lambda tensors: tensors.update({name: torch.zeros(1)})


def header(declared: int, text: bytes) -> bytes:
    """A safetensors file start: 8-byte little-endian header length, then the header."""
    return declared.to_bytes(8, "little") + text


def unknown_cell_in_metadata() -> bytes:
    tensors, metadata = read_safetensors(tiny_weights())
    spec = {**json.loads(metadata["spec"]), "cell": "transformer"}
    return save_safetensors(tensors, metadata={"spec": json.dumps(spec)})


WEIGHTS = tiny_weights()
BAD_WEIGHTS = {
    "garbage": (b"\x07garbage bytes, not a tensor file" * 3, "weights", "safetensors"),
    "header longer than the file": (header(10**6, b'{"a": 1}'), "weights", "safetensors"),
    "header not JSON": (header(12, b"not json at all") + bytes(32), "weights", "safetensors"),
    "truncated": (WEIGHTS[: len(WEIGHTS) // 2], "weights", "safetensors"),
    "NaN": (safetensors_with(first_tensor(float("nan"))), "weights", "NaN"),
    "Inf": (safetensors_with(first_tensor(float("inf"))), "weights", "Inf"),
    "float64": (safetensors_with(cast(torch.float64)), "weights", "torch.float64"),
    "int32": (safetensors_with(cast(torch.int32)), "weights", "torch.int32"),
    "tensor name ../x": (safetensors_with(extra("../x")), "weights", "'../x'"),
    "tensor name a/b": (safetensors_with(extra("a/b")), "weights", "'a/b'"),
}


@pytest.mark.parametrize(("weights", "field", "word"), BAD_WEIGHTS.values(), ids=BAD_WEIGHTS.keys())
def test_malformed_weights_are_refused_without_a_trace(
    api: TestClient, refused: Callable[..., Any], weights: bytes, field: str, word: str
) -> None:
    def send() -> Response:
        return api.post("/v1/models/kept/versions", data={"spec": SPEC}, files={"weights": ("w", weights)})

    assert refused(send, 422, field, word)["code"] == "invalid_weights"


def test_a_multipart_body_cut_short_is_refused(api: TestClient, refused: Callable[..., Any]) -> None:
    """The upload stops mid-file (a client that died): no closing boundary ever comes."""
    files = {"weights": ("w", WEIGHTS)}
    request = api.build_request("POST", "/v1/models/kept/versions", data={"spec": SPEC}, files=files)
    whole = request.read()
    headers = {"content-type": request.headers["content-type"]}
    cut = whole[: len(whole) - 200]

    def send() -> Response:
        return api.post("/v1/models/kept/versions", content=cut, headers=headers)

    refused(send, 422, "weights", "required")  # the unfinished part is dropped, never half-read


def test_an_unknown_cell_in_the_files_metadata_names_it(api: TestClient, refused: Callable[..., Any]) -> None:
    files = {"weights": ("w.safetensors", unknown_cell_in_metadata())}
    refused(lambda: api.post("/v1/models/fresh/versions", files=files), 422, "weights.metadata.spec.cell")


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/models/%2E%2E/versions", 422, "name"),  # ".." reaches the route: refused by the name rule
        ("/v1/models/..%2Fx/versions", 404, None),  # "../x" and "a/b" match no route at all
        ("/v1/models/a%2Fb/versions", 404, None),
    ],
)
def test_model_names_with_path_separators(
    api: TestClient, refused: Callable[..., Any], path: str, status: int, field: str | None
) -> None:
    refused(lambda: api.post(path, data={"spec": SPEC}, files={"weights": ("w", WEIGHTS)}), status, field)


@pytest.mark.parametrize("file", ["%2E%2E", "..%5Cweights.safetensors", "README.md%00.txt"])
def test_file_names_with_path_separators(api: TestClient, refused: Callable[..., Any], file: str) -> None:
    refused(lambda: api.get(f"/v1/models/kept/versions/1/files/{file}"), 404, "file")


def test_a_spec_over_the_parameter_budget_is_refused_from_its_widths(
    api: TestClient, refused: Callable[..., Any]
) -> None:
    """The reproduction: a 1.7 KB file with spec lstm 4096 x 4096 x 4 layers cost 9.9 s and
    +2.1 GB before its 422; each width is within its own limit, the product is not."""
    huge = json.dumps({"cell": "lstm", "input_size": 4096, "hidden_size": 4096, "num_layers": 4})
    files = {"weights": ("w.safetensors", WEIGHTS)}
    send = lambda: api.post("/v1/models/huge/versions", data={"spec": huge}, files=files)  # noqa: E731
    body = refused(send, 422, "spec", "537006081 parameters", "WARMZOO_MAX_PARAMETERS")
    assert body["code"] == "limit_exceeded"
    warmup = {**WARMUP, "spec": json.loads(huge)}  # a warm-up of that spec: the same budget
    refused(lambda: api.post("/v1/warmups", json=warmup), 422, "spec", "WARMZOO_MAX_PARAMETERS")


def test_weights_that_do_not_fit_their_spec_build_no_network(
    api: TestClient, refused: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("a network was built for weights that do not fit their spec")

    monkeypatch.setattr(weights_module, "build_network", no_network)
    wide = json.dumps({"cell": "lstm", "input_size": 1024, "hidden_size": 1024, "num_layers": 4})  # 33.6 M values
    files = {"weights": ("w.safetensors", save_safetensors(read_safetensors(WEIGHTS)[0]))}  # no spec inside
    refused(lambda: api.post("/v1/models/wide/versions", data={"spec": wide}, files=files), 422, "weights", "missing")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_claiming(shape: tuple[int, ...]) -> bytes:
    """A .npy whose header promises `shape` but which holds 16 bytes of data."""
    buffer = io.BytesIO()
    buffer.write(np.lib.format.magic(1, 0))
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(16)


DATASET = npy(np.zeros((4, 5, 1), np.float32))
BAD_DATASETS = {
    "truncated npy": (DATASET[:-7], "file", "npy"),
    "npy header promising 10^18 values": (npy_claiming((10**6, 10**6, 10**6)), "file", "npy"),
    "npy header promising 10^10 values (a MemoryError, once)": (npy_claiming((10**4, 10**3, 10**3)), "file", "bytes"),
    "float64 with Inf": (npy(np.full((4, 5, 1), np.inf)), "file", "Inf"),
    "safetensors header longer than the file": (header(10**6, b"{}"), "file", "safetensors"),
    "int safetensors": (save_safetensors({"x": torch.ones(4, 5, 1, dtype=torch.int32)}), "file", "dtype"),
}


@pytest.mark.parametrize(("content", "field", "word"), BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
def test_malformed_datasets_are_refused_without_a_trace(
    api: TestClient, refused: Callable[..., Any], content: bytes, field: str, word: str
) -> None:
    refused(lambda: api.post("/v1/datasets", files={"file": ("d.npy", content)}), 422, field, word)


def test_a_big_endian_npy_is_read_as_its_values(api: TestClient) -> None:
    values = np.arange(4 * 5 * 1, dtype=">f4").reshape(4, 5, 1)
    answer = api.post("/v1/datasets", files={"file": ("big-endian.npy", npy(values))})
    assert answer.status_code == 201, answer.text
    stored = api.app.state.blobs  # type: ignore[attr-defined]
    with api.app.state.sessions() as session:  # type: ignore[attr-defined]
        read = datasets.read_inputs(session, stored, answer.json()["id"])
    assert read.tolist() == values.astype("<f4").tolist()


@pytest.mark.parametrize(
    ("form", "filename"),
    [({"name": "../x"}, "d.npy"), ({"name": "a/b"}, "d.npy"), ({"name": "a\\b"}, "d.npy"), ({}, "../../etc/x.npy")],
)
def test_dataset_names_are_labels_not_paths(
    api: TestClient, refused: Callable[..., Any], form: dict[str, str], filename: str
) -> None:
    def send() -> Response:
        return api.post("/v1/datasets", data=form, files={"file": (filename, DATASET)})

    assert refused(send, 422, "name", "'/'")["code"] == "invalid_name"


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        ("/v1/warmups", b"{\"name\": \"\xc3\x28\"}", "application/json"),  # not UTF-8
        ("/v1/datasets", b"--b\r\n-1.5e+214--b--\r\n", "multipart/form-data; boundary=b"),
    ],
)
def test_bodies_that_cannot_be_parsed(
    api: TestClient, refused: Callable[..., Any], path: str, content: bytes, content_type: str
) -> None:
    """Both were bare 400s, undocumented in the schema, until the fuzzer sent them."""
    body = refused(lambda: api.post(path, content=content, headers={"content-type": content_type}), 422, None)
    assert body["code"] == "invalid_body" and content_type.split(";")[0] in body["error"]


WARMUP = {
    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
    "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
}


def test_huge_and_deep_json_bodies(api: TestClient, settings: Settings, refused: Callable[..., Any]) -> None:
    limit = api.app.state.settings.max_json_bytes  # type: ignore[attr-defined]
    huge = json.dumps({**WARMUP, "name": "x" * (limit + 1)})
    headers = {"content-type": "application/json"}
    body = refused(lambda: api.post("/v1/warmups", content=huge, headers=headers), 413, None, "MAX_JSON_BYTES")
    assert body["code"] == "content_too_large"
    deep = '{"spec": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert refused(lambda: api.post("/v1/warmups", content=deep, headers=headers), 422, None)["code"] == "invalid_body"
    infer = {"inputs": [{"name": "input", "shape": [1, 1, 2], "datatype": "FP32", "data": [0.0] * (limit // 4)}]}
    refused(lambda: api.post("/v2/models/kept/infer", json=infer), 413, None, "MAX_JSON_BYTES")


@pytest.mark.parametrize(
    ("key", "raw", "status", "field"),
    [
        ("spec", '{"cell": "transformer", "input_size": 1, "hidden_size": 4}', 422, "spec.cell"),
        ("spec", '{"cell": "gru", "input_size": 1, "hidden_size": 1%s}' % ("0" * 30), 422, "spec.hidden_size"),
        ("seed", "1e400", 422, "seed"),
        ("base", '{"model": "../kept", "version": 1}', 404, "base.model"),
    ],
)
def test_bad_warmup_requests_create_no_job(
    api: TestClient, refused: Callable[..., Any], key: str, raw: str, status: int, field: str
) -> None:
    rest = {name: value for name, value in WARMUP.items() if name != key}
    body = json.dumps(rest)[:-1] + f', "{key}": {raw}}}'  # raw text: 1e400 has no Python JSON encoding
    refused(lambda: api.post("/v1/warmups", content=body, headers={"content-type": "application/json"}), status, field)


@pytest.mark.parametrize(
    ("knob", "raw"),
    [
        ("stabilization_max", "1e9"),
        ("stabilization_max", "1000000000"),
        ("stabilization_increment", "1000000000"),
        ("learning_rate", "1e300"),
        ("learning_rate", "Infinity"),
        ("learning_rate", "NaN"),
        ("epsilon", "Infinity"),
        ("batch_size", "1000000000"),
    ],
)
def test_every_warmup_knob_is_bounded(api: TestClient, refused: Callable[..., Any], knob: str, raw: str) -> None:
    """stabilization_max 1e9 grew a worker by 190 MB/s until it died; learning rate Infinity was accepted."""
    body = json.dumps(WARMUP)[:-1] + f', "warmup": {{"{knob}": {raw}}}}}'  # raw: Infinity is no JSON of Python's
    headers = {"content-type": "application/json"}
    refused(lambda: api.post("/v1/warmups", content=body, headers=headers), 422, f"warmup.{knob}")


def test_the_schema_states_every_warmup_bound(api: TestClient) -> None:
    knobs = api.get("/openapi.json").json()["components"]["schemas"]["WarmupConfig"]["properties"]
    for name, schema in knobs.items():
        if schema.get("type") in ("integer", "number"):
            assert "maximum" in schema or "exclusiveMaximum" in schema, name
            assert "minimum" in schema or "exclusiveMinimum" in schema, name


def test_a_negative_task_parameter_is_refused_not_run(api: TestClient, refused: Callable[..., Any]) -> None:
    data = {"task": "denoising", "seq_length": 12, "num_samples": 16, "pad": -1_000_000}
    warmup = {"spec": {"cell": "gru", "input_size": 2, "hidden_size": 4}, "data": data}
    body = refused(lambda: api.post("/v1/warmups", json=warmup), 422, "data.pad", "non-negative")
    assert "-1000000" in body["error"]


@pytest.mark.parametrize("version", ["%C2%B9", "%D9%A1", "%EF%BC%91"])  # superscript one, Arabic-Indic one, fullwidth 1
def test_a_version_of_non_ascii_digits_is_not_a_number(
    api: TestClient, refused: Callable[..., Any], version: str
) -> None:
    """str.isdigit() accepts them and int() then raised: a 500 until the adversarial review."""
    infer = {"inputs": [{"name": "input", "shape": [1, 1, 1], "datatype": "FP32", "data": [0.0]}]}
    refused(lambda: api.post(f"/v2/models/kept/versions/{version}/infer", json=infer), 422, "version", "alias")
    refused(lambda: api.get(f"/v2/models/kept/versions/{version}"), 422, "version", "alias")


# -- never execute user data ----------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def torch_zip(payload: Payload) -> bytes:
    buffer = io.BytesIO()
    torch.save({"layers.0.rnn.weight_ih_l0": payload}, buffer)  # the zip/pickle a .pt file is
    return buffer.getvalue()


def pickles(marker: Path) -> dict[str, bytes]:
    payload = Payload(marker)
    return {
        "torch.save zip": torch_zip(payload),
        "raw pickle": pickle.dumps(payload),
        "npy object array": npy(np.array([payload], dtype=object)),
    }


def test_the_pickles_are_live(tmp_path: Path) -> None:
    """The payloads really run when unpickled, so the refusals below prove something."""
    for kind, data in pickles(tmp_path / "control").items():
        marker = tmp_path / "control"
        if kind == "torch.save zip":
            torch.load(io.BytesIO(data), weights_only=False)
        elif kind == "npy object array":
            np.load(io.BytesIO(data), allow_pickle=True)
        else:
            pickle.loads(data)
        assert marker.exists(), kind
        marker.unlink()


@pytest.mark.parametrize("kind", ["torch.save zip", "raw pickle", "npy object array"])
def test_pickles_disguised_as_weights_or_data_never_run(
    api: TestClient, refused: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    data = pickles(marker)[kind]
    as_weights = {"weights": ("weights.safetensors", data)}
    refused(lambda: api.post("/v1/models/kept/versions", data={"spec": SPEC}, files=as_weights), 422, "weights")
    refused(lambda: api.post("/v1/models/fresh/versions", files=as_weights), 422, "weights")  # spec from the file
    body = refused(lambda: api.post("/v1/datasets", files={"file": ("data.npy", data)}), 422, "file")
    assert not marker.exists(), "the server unpickled user data"
    if kind == "npy object array":
        assert "pickle" in body["error"]
