"""Triton's HTTP extensions on the real app: model configuration, repository index, statistics."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers.factories import tiny_spec

SPEC = tiny_spec()  # gru, input 2, hidden 4, output 1, one layer


def infer_body(steps: int) -> str:
    tensor = {"name": "input", "shape": [1, steps, SPEC.input_size], "datatype": "FP32", "data": [0.5] * 2 * steps}
    return json.dumps({"inputs": [tensor]})


def test_index_config_and_statistics(client: TestClient, upload: Callable[..., Response]) -> None:
    assert upload("tiny").status_code == 201
    unloaded = {"name": "tiny", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}
    assert client.post("/v2/repository/index").json() == [unloaded]  # tritonclient sends no body
    assert client.post("/v2/repository/index", json={"ready": True}).json() == []
    refused = client.post("/v2/repository/index", json={"ready": 0})  # a JSON boolean, not a number
    assert refused.status_code == 422 and "ready" in refused.text

    assert client.post("/v2/models/tiny/versions/1/infer", content=infer_body(3)).status_code == 200  # no Content-Type
    assert client.post("/v2/models/tiny/infer", content=infer_body(0)).status_code == 400
    ready = {"name": "tiny", "version": "1", "state": "READY", "reason": ""}
    assert client.post("/v2/repository/index", content=b'{"ready": true}').json() == [ready]

    config = client.get("/v2/models/tiny/config").json()
    assert client.get("/v2/models/tiny/versions/1/config").json() == config
    assert (config["name"], config["platform"], config["max_batch_size"]) == ("tiny", "onnxruntime_onnx", 64)
    assert {t["name"]: t["dims"] for t in config["input"]} == {"input": [-1, 2], "state": [1, 4]}
    assert {t["name"]: t["dims"] for t in config["output"]} == {"output": [-1, 1], "state": [1, 4]}
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 0}
    assert config["sequence_batching"]["state"][0]["dims"] == [1, 4]

    (stats,) = client.get("/v2/models/tiny/versions/1/stats").json()["model_stats"]
    assert (stats["name"], stats["version"], stats["inference_count"], stats["execution_count"]) == ("tiny", "1", 1, 1)
    counts = {key: value["count"] for key, value in stats["inference_stats"].items()}
    assert (counts["success"], counts["fail"], counts["compute_infer"]) == (1, 1, 1)
    assert [entry["batch_size"] for entry in stats["batch_stats"]] == [1]
    assert client.get("/v2/models/tiny/stats").json()["model_stats"] == [stats]
    assert [s["name"] for s in client.get("/v2/models/stats").json()["model_stats"]] == ["tiny"]

    missing = client.get("/v2/models/nope/stats")
    assert missing.status_code == 404 and "error" in missing.json()
    assert client.get("/v2/models/nope/versions/1/config").status_code == 404
