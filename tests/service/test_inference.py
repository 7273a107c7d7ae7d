"""OIP v2 inference over real ONNX Runtime sessions of exported networks, through the router."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers.clock import Clock
from warmzoo.models.network import build_network
from warmzoo.models.onnx import export_onnx
from warmzoo.models.spec import RNNSpec
from warmzoo.service.api.errors import install_error_handlers
from warmzoo.service.api.metrics import Telemetry, TelemetryMiddleware
from warmzoo.service.api.routes.inference import health, router
from warmzoo.service.core.config import Settings
from warmzoo.service.core.config import Batching
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.serving import dataplane
from warmzoo.service.serving.dataplane import (
    ALONE_MULTIPLY_ADDS,
    QUICK_MULTIPLY_ADDS,
    InferenceService,
    ServedModel,
    multiply_adds,
)
from warmzoo.service.serving.oip import InferenceRequest, InferenceResult, RequestInput
from warmzoo.service.serving.sequences import MemorySequenceStore, RedisSequenceStore

SPECS = {
    "gru": RNNSpec(cell="gru", input_size=3, hidden_size=8, num_layers=2, output_size=2),
    "brc": RNNSpec(cell="brc", input_size=3, hidden_size=6, num_layers=2, output_size=2),
    "lstm": RNNSpec(cell="lstm", input_size=2, hidden_size=4, num_layers=1, output_size=1),
}
ATOL = 1e-5


class Registry:
    """A stand-in for the registry: versions by name, `latest` = the highest."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[int, ServedModel]] = {}

    def add(self, served: ServedModel) -> None:
        self.versions.setdefault(served.name, {})[served.version] = served

    def resolve(self, name: str, version: str | None) -> ServedModel:
        versions = self.versions.get(name)
        if not versions:
            raise WarmzooError(Reason.NOT_FOUND, f"no model {name!r}", field="name", code="not_found")
        if version is None:
            return versions[max(versions)]
        if not version.isdigit() or int(version) not in versions:
            raise WarmzooError(Reason.NOT_FOUND, f"model {name!r} has no version {version!r}", field="version", code="not_found")
        return versions[int(version)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], tuple[torch.nn.Module, Path]]:
    """Real exported networks: every cell of SPECS as version 1, gru also as version 2 (other weights)."""
    root = tmp_path_factory.mktemp("onnx")
    networks = {}
    for (name, version), seed in {("gru", 1): 0, ("gru", 2): 1, ("brc", 1): 0, ("lstm", 1): 0}.items():
        network = build_network(SPECS[name], seed=seed).eval()
        data, _ = export_onnx(network)
        path = root / f"{name}-{version}.onnx"
        path.write_bytes(data)
        networks[name, version] = (network, path)
    return networks


@pytest.fixture
def registry(exported: dict[tuple[str, int], tuple[torch.nn.Module, Path]]) -> Registry:
    registry = Registry()
    for (name, version), (_, path) in exported.items():
        registry.add(ServedModel(name=name, version=version, spec=SPECS[name], onnx_path=path))
    return registry


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(registry: Registry, clock: Clock, request: pytest.FixtureRequest) -> Iterator[InferenceService]:
    """Batching on (the default), or as a test's indirect parameter says."""
    batching = getattr(request, "param", Batching())
    store = MemorySequenceStore(idle_timeout_s=60, max_sequences=3, clock=clock)
    service = InferenceService(
        registry.resolve,
        session_cache_size=2,
        sequence_store=store,
        max_batch_time=1000,
        batching=lambda name, version: batching,
    )
    yield service
    service.close()


@pytest.fixture
def client(service: InferenceService) -> TestClient:
    app = FastAPI(version="9.9.9")
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health)
    app.state.inference = service
    app.state.settings = Settings(auth="off")  # the routes check their caller (api.routing) and name a quota's owner
    app.state.telemetry = Telemetry()
    app.add_middleware(TelemetryMiddleware, telemetry=app.state.telemetry)  # counts requests in flight
    return TestClient(app)


def torch_forward(network: torch.nn.Module, x: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        y, final = network(torch.from_numpy(x), None if state is None else torch.from_numpy(state))
    return y.numpy(), final.numpy()


def tensor(x: np.ndarray, name: str = "input", nested: bool = False) -> dict:
    return {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.tolist() if nested else x.ravel().tolist()}


def outputs(body: dict) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in body["outputs"]}


def infer(client: TestClient, model: str, x: np.ndarray, version: int | None = None, **parameters) -> dict:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    response = client.post(path, json={"parameters": parameters, "inputs": [tensor(x)]})
    assert response.status_code == 200, response.text
    return outputs(response.json())


def random_input(spec: RNNSpec, batch: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, steps, spec.input_size)).astype(np.float32)


# -- server and model metadata ---------------------------------------------------------------


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    metadata = client.get("/v2").json()
    assert metadata["name"] == "warmzoo" and metadata["version"] == "9.9.9"
    assert "sequence" in metadata["extensions"]


def test_model_metadata_marks_dynamic_dimensions(client: TestClient) -> None:
    body = client.get("/v2/models/gru").json()
    spec = SPECS["gru"]
    assert body["name"] == "gru" and body["versions"] == ["2"] and body["platform"] == "onnxruntime_onnx"
    assert {t["name"]: t["shape"] for t in body["inputs"]} == {
        "input": [-1, -1, spec.input_size],
        "state": [spec.num_layers, -1, spec.state_size],
    }
    assert {t["name"]: t["shape"] for t in body["outputs"]} == {
        "output": [-1, -1, spec.output_size],
        "state": [spec.num_layers, -1, spec.state_size],
    }
    assert {t["datatype"] for t in body["inputs"] + body["outputs"]} == {"FP32"}
    assert client.get("/v2/models/gru/versions/1").json()["versions"] == ["1"]


def work(spec: RNNSpec, amount: int) -> InferenceRequest:
    """A request of about `amount` multiply-adds, as InferenceService.runs_inline measures them."""
    steps = amount // multiply_adds(spec, 1, 1)
    return InferenceRequest.model_validate({"inputs": [tensor(random_input(spec, 1, steps))]})


def test_small_requests_on_loaded_versions_run_inline(service: InferenceService) -> None:
    small = InferenceRequest.model_validate({"inputs": [tensor(random_input(SPECS["gru"], 1, 4))]})
    assert not service.runs_inline("gru", "1", small, alone=True)  # loading may export and reads the database
    service.metadata("gru", "1")
    assert service.runs_inline("gru", "1", small, alone=False)
    assert not service.runs_inline("gru", None, small, alone=True)  # `latest` is looked up in the database
    in_sequence = small.model_copy(update={"parameters": {"sequence_id": 1, "sequence_start": True}})
    assert not service.runs_inline("gru", "1", in_sequence, alone=True)  # its store may be Redis
    medium = work(SPECS["gru"], 2 * QUICK_MULTIPLY_ADDS)
    assert service.runs_inline("gru", "1", medium, alone=True)  # nothing else needs the loop meanwhile
    assert not service.runs_inline("gru", "1", medium, alone=False)
    large = work(SPECS["gru"], 2 * ALONE_MULTIPLY_ADDS)
    assert not service.runs_inline("gru", "1", large, alone=True)


@pytest.mark.parametrize("service", [Batching(enabled=False)], indirect=True)
def test_requests_go_to_a_thread_unless_small_or_alone(
    client: TestClient, service: InferenceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed_off = []
    monkeypatch.setattr(service, "max_batch_time", 100_000)  # room for a request of more than quick work

    async def in_thread(
        call: Callable[..., InferenceResult], name: str, version: str | None, body: InferenceRequest, *args: object
    ) -> InferenceResult:
        handed_off.append((name, version))
        return call(name, version, body, *args)

    monkeypatch.setattr(dataplane, "run_sync", in_thread)
    x = random_input(SPECS["gru"], 1, 4)
    first = infer(client, "gru", x, version=1)  # loads the session: in a thread
    again = infer(client, "gru", x, version=1)  # loaded and small: on the event loop
    infer(client, "gru", x)  # `latest`: in a thread
    assert handed_off == [("gru", "1"), ("gru", None)]
    np.testing.assert_array_equal(first["output"], again["output"])

    medium = work(SPECS["gru"], 2 * QUICK_MULTIPLY_ADDS).inputs[0].model_dump()
    assert client.post("/v2/models/gru/versions/1/infer", json={"inputs": [medium]}).status_code == 200
    assert handed_off == [("gru", "1"), ("gru", None)]  # alone: on the event loop
    monkeypatch.setattr(service, "_in_flight", 1)  # as if another request were being answered
    assert client.post("/v2/models/gru/versions/1/infer", json={"inputs": [medium]}).status_code == 200
    assert handed_off == [("gru", "1"), ("gru", None), ("gru", "1")]


def test_loading_a_session_freezes_what_it_left(service: InferenceService) -> None:
    """Full garbage-collector passes skip what a model load leaves (service.gc_pauses)."""
    gc.unfreeze()
    try:
        service.metadata("gru", "1")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_model_ready(client: TestClient, registry: Registry, tmp_path: Path) -> None:
    assert client.get("/v2/models/brc/ready").json() == {"name": "brc", "ready": True}
    assert client.get("/v2/models/gru/versions/1/ready").status_code == 200
    missing = client.get("/v2/models/nope/ready")
    assert missing.status_code == 404 and missing.json()["error"] == "no model 'nope'"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    registry.add(ServedModel(name="broken", version=1, spec=SPECS["gru"], onnx_path=broken))
    response = client.get("/v2/models/broken/ready")
    assert response.status_code == 503 and "cannot be loaded" in response.json()["error"]


# -- inference ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("name", ["gru", "brc", "lstm"])
def test_infer_matches_pytorch(client: TestClient, exported: dict, name: str, nested: bool) -> None:
    network, _ = exported[name, 2 if name == "gru" else 1]
    x = random_input(SPECS[name], batch=3, steps=9)
    response = client.post(f"/v2/models/{name}/infer", json={"id": "req-7", "inputs": [tensor(x, nested=nested)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-7" and body["model_name"] == name
    assert [o["name"] for o in body["outputs"]] == ["output", "state"]
    assert all(o["datatype"] == "FP32" for o in body["outputs"])
    y, final = torch_forward(network, x)
    got = outputs(body)
    np.testing.assert_allclose(got["output"], y, atol=ATOL)
    np.testing.assert_allclose(got["state"], final, atol=ATOL)


def test_response_without_request_id_has_none(client: TestClient) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    body = client.post("/v2/models/brc/infer", json={"inputs": [tensor(x)]}).json()
    assert "id" not in body and body["model_version"] == "1"


def test_versioned_path_serves_that_version(client: TestClient, exported: dict) -> None:
    x = random_input(SPECS["gru"], 2, 5)
    for version in (1, 2):
        y, _ = torch_forward(exported["gru", version][0], x)
        np.testing.assert_allclose(infer(client, "gru", x, version=version)["output"], y, atol=ATOL)


def test_outputs_selection(client: TestClient) -> None:
    x = random_input(SPECS["gru"], 2, 4)
    request = {"inputs": [tensor(x)], "outputs": [{"name": "state"}]}
    body = client.post("/v2/models/gru/infer", json=request).json()
    assert [(o["name"], o["shape"]) for o in body["outputs"]] == [("state", [2, 2, 8])]
    request["outputs"] = [{"name": "state"}, {"name": "output"}]
    assert [o["name"] for o in client.post("/v2/models/gru/infer", json=request).json()["outputs"]] == ["state", "output"]


def test_client_supplied_state_continues_a_sequence(client: TestClient, exported: dict) -> None:
    """Outside the sequence extension a client can carry the state itself."""
    network, _ = exported["brc", 1]
    x = random_input(SPECS["brc"], 2, 10)
    first = infer(client, "brc", x[:, :4])
    request = {"inputs": [tensor(x[:, 4:]), tensor(first["state"], name="state")]}
    second = outputs(client.post("/v2/models/brc/infer", json=request).json())
    y, final = torch_forward(network, x)
    np.testing.assert_allclose(second["output"], y[:, 4:], atol=ATOL)
    np.testing.assert_allclose(second["state"], final, atol=ATOL)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_the_body_is_json_whatever_its_content_type(client: TestClient, content_type: str | None) -> None:
    """As Triton reads it: tritonclient sends its JSON without a Content-Type."""
    x = random_input(SPECS["brc"], 1, 3)
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v2/models/brc/infer", content=json.dumps({"inputs": [tensor(x)]}), headers=headers)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(outputs(response.json())["output"], infer(client, "brc", x)["output"], atol=0)
    broken = client.post("/v2/models/brc/infer", content=b"{not json", headers=headers)
    assert broken.status_code == 422 and broken.json()["code"] == "invalid_json"


def binary_request(header: dict, *tensors: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A body of the binary tensor data extension: the JSON header, then the tensors' bytes."""
    head = json.dumps(header).encode()
    tail = b"".join(t.astype("<f4").tobytes() for t in tensors)
    return head + tail, {"Inference-Header-Content-Length": str(len(head))}


def binary_response(response) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON part of a binary-extension answer and every output, binary or JSON."""
    length = int(response.headers["inference-header-content-length"])
    body, tail, arrays = json.loads(response.content[:length]), response.content[length:], {}
    for output in body["outputs"]:
        if "data" in output:
            arrays[output["name"]] = np.asarray(output["data"], np.float32).reshape(output["shape"])
        else:
            size = output["parameters"]["binary_data_size"]
            arrays[output["name"]] = np.frombuffer(tail[:size], "<f4").reshape(output["shape"])
            tail = tail[size:]
    assert tail == b""
    return body, arrays


def test_binary_tensors_in_and_out(client: TestClient, exported: dict) -> None:
    network, _ = exported["gru", 2]
    x = random_input(SPECS["gru"], 2, 5)
    state = np.random.default_rng(1).normal(size=(2, 2, 8)).astype(np.float32)
    y, final = torch_forward(network, x, state)
    inputs = [
        {"name": name, "shape": list(a.shape), "datatype": "FP32", "parameters": {"binary_data_size": a.nbytes}}
        for name, a in (("input", x), ("state", state))
    ]
    content, headers = binary_request({"inputs": inputs, "parameters": {"binary_data_output": True}}, x, state)
    response = client.post("/v2/models/gru/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    body, got = binary_response(response)
    assert [o["parameters"]["binary_data_size"] for o in body["outputs"]] == [y.nbytes, final.nbytes]
    np.testing.assert_allclose(got["output"], y, atol=ATOL)
    np.testing.assert_allclose(got["state"], final, atol=ATOL)

    # a JSON input beside a binary one; an output's own binary_data wins over binary_data_output
    outputs_wanted = [{"name": "output", "parameters": {"binary_data": False}}, {"name": "state"}]
    header = {"inputs": [tensor(x), inputs[1]], "outputs": outputs_wanted, "parameters": {"binary_data_output": True}}
    content, headers = binary_request(header, state)
    body, got = binary_response(client.post("/v2/models/gru/infer", content=content, headers=headers))
    assert "data" in body["outputs"][0] and "data" not in body["outputs"][1]
    np.testing.assert_allclose(got["output"], y, atol=ATOL)
    np.testing.assert_allclose(got["state"], final, atol=ATOL)

    plain = client.post("/v2/models/gru/infer", json={"inputs": [tensor(x)]})  # no binary asked: plain JSON
    assert plain.headers["content-type"] == "application/json" and "inference-header-content-length" not in plain.headers


BINARY_FAULTS = {
    "short": (lambda x: x[:, :1], 400, "inputs[0].parameters.binary_data_size", "declares 24 bytes"),
    "long": (lambda x: np.concatenate([x, x], axis=1), 400, "inputs", "add up to 24"),
    "header beyond the body": (None, 422, None, "Inference-Header-Content-Length"),
}


@pytest.mark.parametrize("fault", BINARY_FAULTS, ids=list(BINARY_FAULTS))
def test_binary_bodies_that_do_not_add_up_are_refused(client: TestClient, fault: str) -> None:
    cut, status, field, message = BINARY_FAULTS[fault]
    x = random_input(SPECS["brc"], 1, 2)
    header = {"inputs": [{"name": "input", "shape": [1, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}]}
    content, headers = binary_request(header, cut(x) if cut else x)
    if cut is None:
        headers["Inference-Header-Content-Length"] = str(len(content) + 1)
    response = client.post("/v2/models/brc/infer", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and message in response.json()["error"]


def test_binary_data_must_fit_the_shape(client: TestClient) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    header = {"inputs": [{"name": "input", "shape": [1, 3, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}]}
    content, headers = binary_request(header, x)
    response = client.post("/v2/models/brc/infer", content=content, headers=headers)
    assert response.status_code == 400 and "needs 36" in response.json()["error"]


GOOD = {"name": "input", "shape": [1, 2, 3], "datatype": "FP32", "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}
BAD_REQUESTS = {
    "unknown input": ({"inputs": [{**GOOD, "name": "x"}]}, "inputs[0].name", "unknown input 'x'"),
    "missing input": ({"inputs": []}, "inputs", "missing input 'input'"),
    "input twice": ({"inputs": [GOOD, GOOD]}, "inputs[1].name", "sent twice"),
    "datatype": ({"inputs": [{**GOOD, "datatype": "FP64"}]}, "inputs[0].datatype", "it must be 'FP32'"),
    "rank": ({"inputs": [{**GOOD, "shape": [2, 3]}]}, "inputs[0].shape", "[batch, time, 3]"),
    "input size": ({"inputs": [{**GOOD, "shape": [1, 3, 2]}]}, "inputs[0].shape", "[batch, time, 3]"),
    "empty time": ({"inputs": [{**GOOD, "shape": [1, 0, 3], "data": []}]}, "inputs[0].shape", "time axis is empty"),
    "empty batch": ({"inputs": [{**GOOD, "shape": [0, 2, 3], "data": []}]}, "inputs[0].shape", "batch is empty"),
    "negative": ({"inputs": [{**GOOD, "shape": [1, -2, 3]}]}, "inputs[0].shape", "time axis is negative"),
    "too long": ({"inputs": [{**GOOD, "shape": [2, 501, 3]}]}, "inputs[0].shape", "at most 1000"),
    "count": ({"inputs": [{**GOOD, "data": [1.0] * 5}]}, "inputs[0].data", "5 values in data but shape [1, 2, 3] needs 6"),
    "ragged": ({"inputs": [{**GOOD, "data": [[[1, 2, 3], [4, 5]]]}]}, "inputs[0].data", "must be numbers"),
    "strings": ({"inputs": [{**GOOD, "data": ["1"] * 6}]}, "inputs[0].data", "must be numbers"),
    "booleans": ({"inputs": [{**GOOD, "data": [True] * 6}]}, "inputs[0].data", "must be numbers"),
    "no data": ({"inputs": [{k: v for k, v in GOOD.items() if k != "data"}]}, "inputs[0].data", "has no data"),
    "binary": (
        {"inputs": [{**GOOD, "parameters": {"binary_data_size": 24}}]},
        "inputs[0].parameters.binary_data_size",
        "but the body has only 0 bytes",
    ),
    "overflow": ({"inputs": [{**GOOD, "data": [0.0] * 5 + [1e39]}]}, "inputs[0].data", "at index [0, 1, 2]"),
    "state shape": (
        {"inputs": [GOOD, {"name": "state", "shape": [2, 2, 6], "datatype": "FP32", "data": [0.0] * 24}]},
        "inputs[1].shape",
        "[num_layers, batch, state_size] = [2, 1, 6]",
    ),
    "unknown output": ({"inputs": [GOOD], "outputs": [{"name": "hidden"}]}, "outputs[0].name", "unknown output 'hidden'"),
    "output twice": (
        {"inputs": [GOOD], "outputs": [{"name": "state"}, {"name": "state"}]},
        "outputs[1].name",
        "requested twice",
    ),
    "start without id": ({"inputs": [GOOD], "parameters": {"sequence_start": True}}, "parameters.sequence_id", "needs a sequence"),
    "float id": ({"inputs": [GOOD], "parameters": {"sequence_id": 1.5}}, "parameters.sequence_id", "non-negative integer"),
    "negative id": ({"inputs": [GOOD], "parameters": {"sequence_id": -1}}, "parameters.sequence_id", "non-negative integer"),
    "flag type": (
        {"inputs": [GOOD], "parameters": {"sequence_id": 1, "sequence_end": "yes"}},
        "parameters.sequence_end",
        "true or false",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_are_400_naming_the_fault(client: TestClient, service: InferenceService, case: str) -> None:
    request, field, message = BAD_REQUESTS[case]
    response = client.post("/v2/models/brc/infer", json=request)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field and message in body["error"], body
    assert len(service.sequences) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_refused(client: TestClient, literal: str) -> None:
    content = json.dumps({"inputs": [GOOD]}).replace("4.0", literal)
    response = client.post("/v2/models/brc/infer", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "inputs[0].data"
    assert "1 NaN or infinite values" in response.json()["error"] and "[0, 1, 1]" in response.json()["error"]


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/v2/models/nope/infer", json={"inputs": [GOOD]})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# -- streaming sequences -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gru", "brc", "lstm"])
@pytest.mark.parametrize("chunks", [[1] * 12, [5, 1, 4, 2]], ids=["steps", "uneven"])
def test_streaming_equals_one_whole_request(client: TestClient, name: str, chunks: list[int]) -> None:
    x = random_input(SPECS[name], batch=2, steps=sum(chunks), seed=3)
    whole = infer(client, name, x)
    pieces, start = [], 0
    for k, size in enumerate(chunks):
        flags = {"sequence_start": k == 0, "sequence_end": k == len(chunks) - 1}
        pieces.append(infer(client, name, x[:, start : start + size], sequence_id=f"stream-{name}", **flags))
        start += size
    np.testing.assert_allclose(np.concatenate([p["output"] for p in pieces], axis=1), whole["output"], atol=ATOL)
    np.testing.assert_allclose(pieces[-1]["state"], whole["state"], atol=ATOL)


def test_sequence_ids_are_per_model_and_typed(client: TestClient, service: InferenceService) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    infer(client, "brc", x, sequence_id=42, sequence_start=True)
    infer(client, "lstm", random_input(SPECS["lstm"], 1, 2), sequence_id=42, sequence_start=True)
    infer(client, "brc", x, sequence_id="42", sequence_start=True)
    assert len(service.sequences) == 3  # type: ignore[arg-type]


def test_unknown_sequence_is_refused(client: TestClient) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    response = client.post("/v2/models/brc/infer", json={"parameters": {"sequence_id": 9}, "inputs": [tensor(x)]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_sequence" and body["field"] == "parameters.sequence_id"
    assert "sequence_start" in body["error"]


def test_idle_sequence_expires(client: TestClient, clock: Clock) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    infer(client, "brc", x, sequence_id=1, sequence_start=True)
    clock.now += 59
    infer(client, "brc", x, sequence_id=1)  # activity restarts the idle timer
    clock.now += 59
    infer(client, "brc", x, sequence_id=1)
    clock.now += 61
    response = client.post("/v2/models/brc/infer", json={"parameters": {"sequence_id": 1}, "inputs": [tensor(x)]})
    assert response.status_code == 400 and "expired after 60 s idle" in response.json()["error"]


def test_sequence_end_frees_the_state(client: TestClient, service: InferenceService) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    infer(client, "brc", x, sequence_id="a", sequence_start=True)
    assert len(service.sequences) == 1  # type: ignore[arg-type]
    infer(client, "brc", x, sequence_id="a", sequence_end=True)
    assert len(service.sequences) == 0  # type: ignore[arg-type]
    response = client.post("/v2/models/brc/infer", json={"parameters": {"sequence_id": "a"}, "inputs": [tensor(x)]})
    assert response.status_code == 400 and response.json()["code"] == "unknown_sequence"
    infer(client, "brc", x, sequence_id="b", sequence_start=True, sequence_end=True)  # a one-request sequence
    assert len(service.sequences) == 0  # type: ignore[arg-type]


def test_restart_replaces_an_open_sequence(client: TestClient) -> None:
    x = random_input(SPECS["brc"], 1, 4)
    infer(client, "brc", x, sequence_id=5, sequence_start=True)
    again = infer(client, "brc", x, sequence_id=5, sequence_start=True)
    np.testing.assert_allclose(again["output"], infer(client, "brc", x)["output"], atol=ATOL)


def test_open_sequences_are_bounded(client: TestClient) -> None:
    x = random_input(SPECS["brc"], 1, 2)
    for k in range(3):
        infer(client, "brc", x, sequence_id=k + 1, sequence_start=True)
    request = {"parameters": {"sequence_id": 4, "sequence_start": True}, "inputs": [tensor(x)]}
    response = client.post("/v2/models/brc/infer", json=request)
    assert response.status_code == 503
    assert response.json()["code"] == "too_many_sequences" and "limit of 3 open sequences" in response.json()["error"]
    infer(client, "brc", x, sequence_id=1, sequence_end=True)
    assert client.post("/v2/models/brc/infer", json=request).status_code == 200


def test_an_unreachable_sequence_store_is_a_503(client: TestClient, service: InferenceService) -> None:
    """A real Redis client aimed at a closed port: the outage is named, not a 500."""
    service.sequences = RedisSequenceStore(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
    x = random_input(SPECS["brc"], 1, 2)
    request = {"parameters": {"sequence_id": 7, "sequence_start": True}, "inputs": [tensor(x)]}
    response = client.post("/v2/models/brc/infer", json=request)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "sequence_store_unavailable"
    assert client.post("/v2/models/brc/infer", json={"inputs": [tensor(x)]}).status_code == 200  # no sequence: fine


def test_sequence_keeps_its_batch_size(client: TestClient) -> None:
    spec = SPECS["brc"]
    infer(client, "brc", random_input(spec, 2, 3), sequence_id=1, sequence_start=True)
    request = {"parameters": {"sequence_id": 1}, "inputs": [tensor(random_input(spec, 3, 3))]}
    response = client.post("/v2/models/brc/infer", json=request)
    assert response.status_code == 400 and "started with batch size 2" in response.json()["error"]
    infer(client, "brc", random_input(spec, 2, 3), sequence_id=1)  # the failed request changed nothing


def test_open_sequence_refuses_a_client_state(client: TestClient) -> None:
    spec = SPECS["brc"]
    infer(client, "brc", random_input(spec, 1, 3), sequence_id=1, sequence_start=True)
    state = np.zeros((spec.num_layers, 1, spec.state_size), dtype=np.float32)
    request = {"parameters": {"sequence_id": 1}, "inputs": [tensor(random_input(spec, 1, 1)), tensor(state, "state")]}
    response = client.post("/v2/models/brc/infer", json=request)
    assert response.status_code == 400 and response.json()["field"] == "inputs[1].name"


def test_sequence_is_pinned_to_its_version(
    client: TestClient, registry: Registry, exported: dict, tmp_path: Path
) -> None:
    x = random_input(SPECS["gru"], 1, 6)
    first = infer(client, "gru", x[:, :3], sequence_id=7, sequence_start=True)
    # A new latest version appears mid-sequence: the sequence stays on version 2.
    registry.add(ServedModel(name="gru", version=3, spec=SPECS["gru"], onnx_path=exported["gru", 1][1]))
    second = infer(client, "gru", x[:, 3:], sequence_id=7)
    y, _ = torch_forward(exported["gru", 2][0], x)
    np.testing.assert_allclose(np.concatenate([first["output"], second["output"]], axis=1), y, atol=ATOL)
    request = {"parameters": {"sequence_id": 7}, "inputs": [tensor(x[:, :1])]}
    response = client.post("/v2/models/gru/versions/3/infer", json=request)
    assert response.status_code == 400 and response.json()["code"] == "sequence_mismatch"
    assert "/v2/models/gru/versions/2/infer" in response.json()["error"]
    assert client.post("/v2/models/gru/versions/2/infer", json=request).status_code == 200


# -- sessions ------------------------------------------------------------------------------------


def test_sessions_are_an_lru_cache(client: TestClient, service: InferenceService) -> None:
    x = random_input(SPECS["brc"], 1, 1)
    infer(client, "brc", x)
    infer(client, "lstm", random_input(SPECS["lstm"], 1, 1))
    infer(client, "brc", x)  # brc becomes the most recently used
    assert service.cached_sessions() == [("lstm", 1), ("brc", 1)]
    infer(client, "gru", random_input(SPECS["gru"], 1, 1), version=1)
    assert service.cached_sessions() == [("brc", 1), ("gru", 1)]
    infer(client, "lstm", random_input(SPECS["lstm"], 1, 1))  # evicted sessions load again
    assert service.cached_sessions() == [("gru", 1), ("lstm", 1)]


def test_concurrent_requests_of_one_sequence_do_not_lose_steps(service: InferenceService) -> None:
    """Identical chunks commute, so any serial order gives the whole-sequence state; a lost update would not."""
    spec = SPECS["brc"]
    chunk = random_input(spec, 1, 2)
    request = InferenceRequest(inputs=[RequestInput(**tensor(chunk))], parameters={"sequence_id": 1})
    start = InferenceRequest(inputs=request.inputs, parameters={"sequence_id": 1, "sequence_start": True})
    service.infer("brc", None, start)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: service.infer("brc", None, request), range(15)))
    final = service.sequences.get(json.dumps(["", "brc", 1]))  # the owner of direct calls is ""
    whole = service.infer("brc", None, InferenceRequest(inputs=[RequestInput(**tensor(np.tile(chunk, (1, 16, 1))))]))
    assert final is not None
    np.testing.assert_allclose(final.state, whole.outputs["state"], atol=ATOL)
