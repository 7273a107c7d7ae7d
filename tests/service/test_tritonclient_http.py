"""The Triton client (`tritonclient.http`, as a user installs it) against a real `warmzoo serve`:
no extra headers, default `set_data_from_numpy` (binary tensors), and every call it makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.helpers.factories import tiny_weights
from tests.helpers.server import Server, running_server
from warmzoo.models.spec import RNNSpec

pytestmark = pytest.mark.e2e

MODEL = "triton-gru"
SPEC = RNNSpec(cell="gru", input_size=2, hidden_size=8, num_layers=2, output_size=3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("triton"), WARMZOO_WORKERS="0") as running:
        form = {"spec": SPEC.model_dump_json()}
        published = running.http.post(
            f"/v1/models/{MODEL}/versions", data=form, files={"weights": ("w.safetensors", tiny_weights(SPEC))}
        )
        assert published.status_code == 201, published.text
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url.removeprefix("http://")) as client:
        yield client


@pytest.fixture(scope="module")
def local(server: Server, tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """The served model.onnx, run here: what every answer must equal."""
    onnx = server.http.get(f"/v1/models/{MODEL}/versions/1/files/model.onnx")
    assert onnx.status_code == 200
    path = Path(tmp_path_factory.mktemp("onnx")) / "model.onnx"
    path.write_bytes(onnx.content)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def expected(local: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    output, state = local.run(["output", "state_out"], {"input": x})
    return {"output": output, "state": state}


def sequence_input(x: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(MODEL, "1")
    assert {t["name"]: t["shape"] for t in metadata["inputs"]}["input"] == [-1, -1, SPEC.input_size]


def test_binary_in_and_out_by_default(client: triton.InferenceServerClient, local: ort.InferenceSession) -> None:
    x = np.random.default_rng(0).normal(size=(2, 6, SPEC.input_size)).astype(np.float32)
    result = client.infer(MODEL, [sequence_input(x)], model_version="1", request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    assert all("binary_data_size" in output["parameters"] for output in result.get_response()["outputs"])
    for name, array in expected(local, x).items():
        np.testing.assert_allclose(result.as_numpy(name), array, atol=1e-5)


def test_json_in_and_out(client: triton.InferenceServerClient, local: ort.InferenceSession) -> None:
    """tritonclient sends its JSON body without a Content-Type."""
    x = np.random.default_rng(1).normal(size=(1, 4, SPEC.input_size)).astype(np.float32)
    outputs = [triton.InferRequestedOutput("output", binary_data=False)]
    result = client.infer(MODEL, [sequence_input(x, binary=False)], outputs=outputs)
    assert "data" in result.get_response()["outputs"][0]
    np.testing.assert_allclose(result.as_numpy("output"), expected(local, x)["output"], atol=1e-5)
    assert result.as_numpy("state") is None  # not asked for


def test_errors_reach_the_client_with_their_message(client: triton.InferenceServerClient) -> None:
    x = np.zeros((1, 3, SPEC.input_size + 1), np.float32)
    with pytest.raises(InferenceServerException, match=r"it must be \[batch, time, input_size\]"):
        client.infer(MODEL, [sequence_input(x)])
    with pytest.raises(InferenceServerException, match="no-such-model"):
        client.get_model_config("no-such-model")


def test_a_streamed_sequence_equals_the_whole(
    client: triton.InferenceServerClient, local: ort.InferenceSession
) -> None:
    x = np.random.default_rng(2).normal(size=(1, 5, SPEC.input_size)).astype(np.float32)
    steps = [
        client.infer(
            MODEL, [sequence_input(x[:, t : t + 1])], sequence_id=42, sequence_start=t == 0, sequence_end=t == 4
        )
        for t in range(5)
    ]
    whole = expected(local, x)
    streamed = np.concatenate([step.as_numpy("output") for step in steps], axis=1)
    np.testing.assert_allclose(streamed, whole["output"], atol=1e-5)
    np.testing.assert_allclose(steps[-1].as_numpy("state"), whole["state"], atol=1e-5)
    with pytest.raises(InferenceServerException, match="no open sequence"):
        client.infer(MODEL, [sequence_input(x[:, :1])], sequence_id=42)  # it ended


def test_config_index_and_statistics(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config(MODEL, "1")
    assert config["name"] == MODEL and config["max_batch_size"] == 64 and "dynamic_batching" in config
    assert {t["name"]: t["dims"] for t in config["input"]} == {"input": [-1, 2], "state": [2, 8]}
    assert {t["name"]: t["dims"] for t in config["output"]} == {"output": [-1, 3], "state": [2, 8]}
    assert config["sequence_batching"]["state"][0]["input_name"] == "state"
    assert client.get_model_config(MODEL) == config  # latest

    client.infer(MODEL, [sequence_input(np.zeros((1, 2, SPEC.input_size), np.float32))])
    assert {"name": MODEL, "version": "1", "state": "READY", "reason": ""} in client.get_model_repository_index()

    stats = client.get_inference_statistics(MODEL, "1")["model_stats"]
    assert [(s["name"], s["version"]) for s in stats] == [(MODEL, "1")]
    inference = stats[0]["inference_stats"]
    assert inference["success"]["count"] >= 1 and inference["compute_infer"]["ns"] > 0
    assert stats[0]["execution_count"] >= 1 and stats[0]["batch_stats"]
    assert client.get_inference_statistics()["model_stats"][0]["name"] == MODEL
