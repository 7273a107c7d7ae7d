"""The ecosystem's own gRPC clients against a real `warmzoo serve`: Triton's `tritonclient.grpc`
(every call it makes for a /v2 model, as a user would write it) and KServe's
`InferenceGRPCClient`. KServe's stubs and Triton's define the same `inference.*` protobuf
symbols in differently named files, so one process cannot load both: KServe's client runs in
a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.server import Server, start_server, stop_server
from warmzoo.service.cli.main import main

pytestmark = pytest.mark.e2e

SPEC = tiny_spec(num_layers=2)  # input_size 2, output 1, state [2, batch, 4]
MODEL = "m"


def publish(server: Server, headers: dict[str, str] | None = None) -> None:
    files = {"weights": ("w.safetensors", tiny_weights(SPEC))}
    answer = server.http.post(
        f"/v1/models/{MODEL}/versions", data={"spec": SPEC.model_dump_json()}, files=files, headers=headers
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("zoo"), WARMZOO_WORKERS="0")
    publish(running)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(server.grpc) as triton:
        yield triton


def sequence_input(x: np.ndarray) -> list[grpcclient.InferInput]:
    data = grpcclient.InferInput("input", list(x.shape), "FP32")
    data.set_data_from_numpy(x)  # the default: raw_input_contents
    return [data]


def http_outputs(server: Server, x: np.ndarray, **parameters: object) -> dict[str, np.ndarray]:
    body = {"parameters": parameters, "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                                  "data": x.ravel().tolist()}]}
    answer = server.http.post(f"/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in answer.json()["outputs"]}


def random_input(steps: int, batch: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, steps, SPEC.input_size)).astype(np.float32)


def test_health_and_metadata(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata().name == "warmzoo"
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    meta = client.get_model_metadata(MODEL, as_json=True)
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert {t["name"]: t["shape"] for t in meta["inputs"]} == {"input": ["-1", "-1", "2"], "state": ["2", "-1", "4"]}


def test_config_index_and_statistics(server: Server, client: grpcclient.InferenceServerClient) -> None:
    client.infer(MODEL, sequence_input(random_input(4)))
    config = client.get_model_config(MODEL, as_json=True)["config"]
    assert config["name"] == MODEL and config["max_batch_size"] == server.http.get(f"/v2/models/{MODEL}/config").json()[
        "max_batch_size"
    ]
    assert [(t["name"], t["data_type"]) for t in config["input"]] == [("input", "TYPE_FP32"), ("state", "TYPE_FP32")]
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {(e["name"], e["version"]) for e in index} == {(MODEL, "1")}
    stats = client.get_inference_statistics(MODEL, as_json=True)["model_stats"]
    assert stats[0]["name"] == MODEL and int(stats[0]["inference_stats"]["success"]["count"]) >= 1


def test_infer_equals_http(server: Server, client: grpcclient.InferenceServerClient) -> None:
    x = random_input(7, batch=3)
    result = client.infer(MODEL, sequence_input(x), request_id="r1")
    assert result.get_response().id == "r1"
    for name, expected in http_outputs(server, x).items():
        np.testing.assert_array_equal(result.as_numpy(name), expected)
    only = client.infer(MODEL, sequence_input(x), outputs=[grpcclient.InferRequestedOutput("state")])
    assert [o.name for o in only.get_response().outputs] == ["state"]


def test_a_sequence_of_steps_equals_the_whole(client: grpcclient.InferenceServerClient) -> None:
    x = random_input(12)
    whole = client.infer(MODEL, sequence_input(x))
    chunks = []
    for start in range(0, 12, 4):
        step = client.infer(
            MODEL, sequence_input(x[:, start : start + 4]), sequence_id=42, sequence_start=start == 0, sequence_end=start == 8
        )
        chunks.append(step)
    np.testing.assert_allclose(np.concatenate([c.as_numpy("output") for c in chunks], axis=1), whole.as_numpy("output"), atol=1e-6)
    np.testing.assert_allclose(chunks[-1].as_numpy("state"), whole.as_numpy("state"), atol=1e-6)
    with pytest.raises(InferenceServerException) as ended:
        client.infer(MODEL, sequence_input(x[:, :1]), sequence_id=42)
    assert ended.value.status() == "StatusCode.INVALID_ARGUMENT" and "no open sequence 42" in ended.value.message()


def test_a_stream_answers_each_request_in_order(server: Server) -> None:
    """tritonclient's streaming API (ModelStreamInfer): a sequence's steps on one stream, with a
    refused request in the middle answered by its error while the stream goes on."""
    x = random_input(6)
    answers: list[tuple[object, object]] = []
    with grpcclient.InferenceServerClient(server.grpc) as triton:
        whole = triton.infer(MODEL, sequence_input(x))
        triton.start_stream(callback=lambda result, error: answers.append((result, error)))
        for t in range(6):
            triton.async_stream_infer(
                MODEL, sequence_input(x[:, t : t + 1]), request_id=str(t), sequence_id="s", sequence_start=t == 0,
                sequence_end=t == 5,
            )
            if t == 2:
                triton.async_stream_infer(MODEL, sequence_input(np.zeros((1, 1, 3), np.float32)), request_id="bad")
        triton.stop_stream()  # waits for every answer
    errors = [error for _, error in answers if error is not None]
    assert len(errors) == 1 and "input 'input' has shape [1, 1, 3]" in errors[0].message()
    results = [result for result, error in answers if error is None]
    assert [r.get_response().id for r in results] == [str(t) for t in range(6)]
    outputs = np.concatenate([r.as_numpy("output") for r in results], axis=1)
    np.testing.assert_allclose(outputs, whole.as_numpy("output"), atol=1e-6)


def test_bad_input_gets_named_errors(client: grpcclient.InferenceServerClient) -> None:
    cases = {
        "nope": ("StatusCode.NOT_FOUND", "no model named 'nope'", random_input(3)),
        MODEL: ("StatusCode.INVALID_ARGUMENT", "input 'input' has shape [1, 3, 3]", np.zeros((1, 3, 3), np.float32)),
    }
    for model, (status, message, x) in cases.items():
        with pytest.raises(InferenceServerException) as raised:
            client.infer(model, sequence_input(x))
        assert (raised.value.status(), message in raised.value.message()) == (status, True), raised.value
    wrong_type = grpcclient.InferInput("input", [1, 2, 2], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 2, 2)))
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, [wrong_type])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT" and "must be 'FP32'" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata(MODEL, "9")
    assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_a_key_is_asked_for_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--owner", "alice", "--scope", "write", "--data-dir", str(tmp_path)]) == 0
    key = capsys.readouterr().out.strip()
    server = start_server(tmp_path, WARMZOO_AUTH="on", WARMZOO_ANONYMOUS_READ="false", WARMZOO_WORKERS="0")
    try:
        publish(server, {"authorization": f"Bearer {key}"})
        with grpcclient.InferenceServerClient(server.grpc) as triton:
            assert triton.is_server_live()  # probes need no key
            x = random_input(3)
            for headers in (None, {"authorization": "Bearer " + key[:-1] + ("x" if key[-1] != "x" else "y")}):
                with pytest.raises(InferenceServerException) as raised:
                    triton.infer(MODEL, sequence_input(x), headers=headers)
                assert raised.value.status() == "StatusCode.UNAUTHENTICATED", raised.value
            result = triton.infer(MODEL, sequence_input(x), headers={"authorization": f"Bearer {key}"})
            assert result.as_numpy("output").shape == (1, 3, 1)
    finally:
        stop_server(server)


KSERVE_CLIENT = """
import asyncio, json, sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(target, model, x):
    client = InferenceGRPCClient(target, timeout=30, retries=0)
    live, ready = await client.is_server_live(), await client.is_model_ready(model)
    data = InferInput("input", list(x.shape), "FP32")
    data.set_data_from_numpy(x)
    response = await client.infer(InferRequest(model, [data], request_id="k1"))
    await client.close()
    outputs = {output.name: output.as_numpy().tolist() for output in response.outputs}
    return {"live": live, "ready": ready, "id": response.id, "outputs": outputs}


target, model, data = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(json.dumps(asyncio.run(main(target, model, np.asarray(data, dtype=np.float32)))))
"""


def test_kserve_grpc_client(server: Server) -> None:
    x = random_input(5, batch=2)
    run = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, server.grpc, MODEL, json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout)
    assert (answer["live"], answer["ready"], answer["id"]) == (True, True, "k1")
    for name, expected in http_outputs(server, x).items():
        np.testing.assert_array_equal(np.asarray(answer["outputs"][name], dtype=np.float32), expected)
