"""gRPC /v2 in the process of a real app (create_app, SQLite registry): the same answers and the
same named errors as HTTP /v2, as gRPC status codes; auth, rate limits and message size limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format

from tests.helpers.server import free_port
from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.api.app import create_app
from warmzoo.service.api.errors import GRPC_CODE_KEY, GRPC_FIELD_KEY, GRPC_RETRY_KEY, GRPC_STATUS, HTTP_STATUS
from warmzoo.service.api.grpc.protos import grpc_service_pb2 as pb
from warmzoo.service.api.grpc.protos.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason
from warmzoo.service.security.auth import create_key

SPEC = tiny_spec(num_layers=2)  # input_size 2, state [2, batch, 4]
GOOD = {"name": "input", "shape": [1, 3, 2], "datatype": "FP32", "data": [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]}


@dataclass
class Zoo:
    http: TestClient
    grpc: GRPCInferenceServiceStub


@pytest.fixture
def open_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), auth="off", rate_limit_per_s=0)


def serve(settings: Settings) -> Iterator[Zoo]:
    """The app with gRPC on a free port, model `m` (SPEC) version 1 published."""
    address = f"127.0.0.1:{free_port()}"
    with (
        TestClient(create_app(settings.model_copy(update={"grpc_address": address}))) as http,
        grpc.insecure_channel(address) as channel,
    ):
        data = {"spec": SPEC.model_dump_json()}
        files = {"weights": ("w.safetensors", tiny_weights(SPEC))}
        key = None
        if settings.auth == "on":
            with http.app.state.sessions() as session:  # type: ignore[attr-defined]
                key = create_key(session, "alice", "write")[1]
        headers = {"authorization": f"Bearer {key}"} if key else {}
        assert http.post("/v1/models/m/versions", data=data, files=files, headers=headers).status_code == 201
        http.headers.update(headers)
        yield Zoo(http, GRPCInferenceServiceStub(channel))


@pytest.fixture
def zoo(open_settings: Settings) -> Iterator[Zoo]:
    yield from serve(open_settings)


def infer_request(model: str, body: dict[str, Any], *, raw: bool = False, version: str = "") -> pb.ModelInferRequest:
    """The ModelInferRequest of an OIP JSON body: tensors as FP32 contents, or as raw bytes."""
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=body.get("id", ""))
    for key, value in (body.get("parameters") or {}).items():
        kind = {bool: "bool_param", int: "int64_param", float: "double_param", str: "string_param"}[type(value)]
        setattr(request.parameters[key], kind, value)
    for tensor in body["inputs"]:
        sent = request.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        values = np.asarray(tensor["data"], dtype=np.float32)
        if raw:
            request.raw_input_contents.append(values.tobytes())
        else:
            sent.contents.fp32_contents.extend(values.ravel().tolist())
    for output in body.get("outputs", []):
        request.outputs.add(name=output["name"])
    return request


def arrays(reply: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    return {
        out.name: np.frombuffer(data, dtype="<f4").reshape(out.shape)
        for out, data in zip(reply.outputs, reply.raw_output_contents, strict=True)
    }


def http_arrays(body: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"], dtype=np.float32).reshape(o["shape"]) for o in body["outputs"]}


def failure(call: Any, request: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, **kwargs)
    return raised.value


def trailers(error: grpc.RpcError) -> dict[str, str]:
    return dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]


def test_every_reason_has_a_grpc_status_and_none_is_internal() -> None:
    assert set(GRPC_STATUS) == set(Reason)
    assert not {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK} & set(GRPC_STATUS.values())


def test_health_and_metadata(zoo: Zoo) -> None:
    assert zoo.grpc.ServerLive(pb.ServerLiveRequest()).live
    assert zoo.grpc.ServerReady(pb.ServerReadyRequest()).ready
    server = zoo.grpc.ServerMetadata(pb.ServerMetadataRequest())
    assert (server.name, list(server.extensions)) == ("warmzoo", zoo.http.get("/v2").json()["extensions"])
    assert zoo.grpc.ModelReady(pb.ModelReadyRequest(name="m", version="1")).ready
    meta = zoo.grpc.ModelMetadata(pb.ModelMetadataRequest(name="m"))
    assert {t.name: list(t.shape) for t in meta.inputs} == {"input": [-1, -1, 2], "state": [2, -1, 4]}
    assert (meta.name, list(meta.versions), meta.platform) == ("m", ["1"], "onnxruntime_onnx")


def test_config_index_and_statistics_are_the_http_json_as_protobuf(zoo: Zoo) -> None:
    zoo.grpc.ModelInfer(infer_request("m", {"inputs": [GOOD]}))
    config = zoo.grpc.ModelConfig(pb.ModelConfigRequest(name="m")).config
    http_config = zoo.http.get("/v2/models/m/config").json()
    batching = http_config.pop("dynamic_batching")  # a protobuf config has one scheduler: moved into the sequence's
    oldest = config.sequence_batching.oldest
    assert (oldest.max_candidate_sequences, oldest.max_queue_delay_microseconds) == (
        http_config["max_batch_size"],
        batching["max_queue_delay_microseconds"],
    )
    config.sequence_batching.ClearField("oldest")
    assert config == json_format.ParseDict(http_config, type(config)())
    index = zoo.grpc.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models
    assert [(e.name, e.version, e.state) for e in index] == [("m", "1", "READY")]
    stats = zoo.grpc.ModelStatistics(pb.ModelStatisticsRequest(name="m", version="1")).model_stats
    http_stats = zoo.http.get("/v2/models/m/versions/1/stats").json()["model_stats"]
    assert [(s.name, s.version, s.inference_count) for s in stats] == [("m", "1", 1)]
    assert stats[0].inference_stats.success.count == http_stats[0]["inference_stats"]["success"]["count"] == 1
    assert [s.name for s in zoo.grpc.ModelStatistics(pb.ModelStatisticsRequest()).model_stats] == ["m"]
    error = failure(zoo.grpc.ModelConfig, pb.ModelConfigRequest(name="nope"))
    assert error.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("raw", [False, True], ids=["contents", "raw"])
def test_infer_answers_what_http_answers(zoo: Zoo, raw: bool) -> None:
    body = {"id": "7", "inputs": [GOOD]}
    reply = zoo.grpc.ModelInfer(infer_request("m", body, raw=raw))
    expected = zoo.http.post("/v2/models/m/infer", json=body).json()
    assert (reply.model_name, reply.model_version, reply.id) == ("m", "1", "7")
    assert [o.datatype for o in reply.outputs] == ["FP32", "FP32"]
    got = arrays(reply)
    for name, array in http_arrays(expected).items():
        np.testing.assert_array_equal(got[name], array)


def test_a_sequence_over_grpc_equals_one_whole_request(zoo: Zoo) -> None:
    x = np.random.default_rng(0).normal(size=(1, 5, 2)).astype(np.float32)
    whole = arrays(zoo.grpc.ModelInfer(infer_request("m", {"inputs": [{**GOOD, "shape": [1, 5, 2], "data": x}]})))
    steps = []
    for t, flags in enumerate([{"sequence_start": True}, {}, {}, {}, {"sequence_end": True}]):
        body = {"parameters": {"sequence_id": "s-1", **flags}, "inputs": [{**GOOD, "shape": [1, 1, 2], "data": x[:, t]}]}
        steps.append(arrays(zoo.grpc.ModelInfer(infer_request("m", body, raw=True))))
    np.testing.assert_allclose(np.concatenate([s["output"] for s in steps], axis=1), whole["output"], atol=1e-6)
    np.testing.assert_allclose(steps[-1]["state"], whole["state"], atol=1e-6)
    error = failure(zoo.grpc.ModelInfer, infer_request("m", {"parameters": {"sequence_id": "s-1"}, "inputs": [GOOD]}))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and trailers(error)[GRPC_CODE_KEY] == "unknown_sequence"


# The same fault over HTTP and over gRPC: (model, version, body).
BAD = {
    "unknown input": ("m", "", {"inputs": [{**GOOD, "name": "x"}]}),
    "datatype": ("m", "", {"inputs": [{**GOOD, "datatype": "FP64"}]}),
    "rank": ("m", "", {"inputs": [{**GOOD, "shape": [2, 3]}]}),
    "count": ("m", "", {"inputs": [{**GOOD, "data": GOOD["data"][:5]}]}),
    "not finite": ("m", "", {"inputs": [{**GOOD, "data": [0.0] * 5 + [float("nan")]}]}),
    "state shape": ("m", "", {"inputs": [GOOD, {**GOOD, "name": "state", "shape": [1, 1, 4], "data": [0.0] * 4}]}),
    "unknown output": ("m", "", {"inputs": [GOOD], "outputs": [{"name": "hidden"}]}),
    "start without id": ("m", "", {"inputs": [GOOD], "parameters": {"sequence_start": True}}),
    "unknown sequence": ("m", "", {"inputs": [GOOD], "parameters": {"sequence_id": 77}}),
    "unknown model": ("nope", "", {"inputs": [GOOD]}),
    "unknown version": ("m", "9", {"inputs": [GOOD]}),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_gets_the_named_error_of_http(zoo: Zoo, case: str) -> None:
    model, version, body = BAD[case]
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    http = zoo.http.post(path, content=json.dumps(body))  # json.dumps writes NaN, as some clients do
    assert http.status_code in (400, 404), http.text
    error = failure(zoo.grpc.ModelInfer, infer_request(model, body, version=version))
    reason = next(r for r, status in HTTP_STATUS.items() if status == http.status_code)
    assert error.code() is GRPC_STATUS[reason]
    assert error.details() == http.json()["error"]
    assert trailers(error)[GRPC_CODE_KEY] == http.json()["code"]
    assert trailers(error).get(GRPC_FIELD_KEY) == http.json()["field"]


def test_raw_contents_must_come_for_every_input_and_alone(zoo: Zoo) -> None:
    request = infer_request("m", {"inputs": [GOOD]}, raw=True)
    request.inputs.add(name="state", datatype="FP32", shape=[2, 1, 4])
    error = failure(zoo.grpc.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and trailers(error)[GRPC_FIELD_KEY] == "raw_input_contents"
    request = infer_request("m", {"inputs": [GOOD]}, raw=True)
    request.inputs[0].contents.fp32_contents.extend([0.0] * 6)
    error = failure(zoo.grpc.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "both `contents` and raw" in error.details()
    request = infer_request("m", {"inputs": [GOOD]}, raw=True)
    request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    error = failure(zoo.grpc.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "input 'input'" in error.details()


def test_a_message_over_the_body_limit_is_resource_exhausted(open_settings: Settings) -> None:
    for zoo in serve(open_settings.model_copy(update={"max_json_bytes": 4096})):
        body = {"inputs": [{**GOOD, "shape": [1, 1000, 2], "data": [0.0] * 2000}]}
        error = failure(zoo.grpc.ModelInfer, infer_request("m", body, raw=True))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_keys_and_rates_as_over_http(open_settings: Settings) -> None:
    settings = open_settings.model_copy(
        update={"auth": "on", "anonymous_read": False, "rate_limit_per_s": 0.001, "rate_limit_burst": 2}
    )
    for zoo in serve(settings):
        assert zoo.grpc.ServerLive(pb.ServerLiveRequest()).live  # probes need no key, as over HTTP
        error = failure(zoo.grpc.ModelMetadata, pb.ModelMetadataRequest(name="m"))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED and trailers(error)[GRPC_CODE_KEY] == "no_key"
        forged = [("authorization", "Bearer wz_000000000000_" + "x" * 43)]
        error = failure(zoo.grpc.ModelMetadata, pb.ModelMetadataRequest(name="m"), metadata=forged)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED and "unknown API key" in error.details()
        key = [("authorization", zoo.http.headers["authorization"])]
        reply = zoo.grpc.ModelInfer(infer_request("m", {"inputs": [GOOD]}), metadata=key)
        assert arrays(reply)["output"].shape == (1, 3, 1)  # the key's two requests: the upload and this one
        error = failure(zoo.grpc.ModelInfer, infer_request("m", {"inputs": [GOOD]}), metadata=key)
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and int(trailers(error)[GRPC_RETRY_KEY]) >= 1


def test_grpc_calls_count_in_the_metrics(zoo: Zoo) -> None:
    zoo.grpc.ModelInfer(infer_request("m", {"inputs": [GOOD]}))
    failure(zoo.grpc.ModelInfer, infer_request("m", {"inputs": [{**GOOD, "name": "x"}]}))
    metrics = zoo.http.get("/metrics").text
    assert 'warmzoo_grpc_requests_total{code="OK",method="ModelInfer"} 1.0' in metrics
    assert 'warmzoo_grpc_requests_total{code="INVALID_ARGUMENT",method="ModelInfer"} 1.0' in metrics
    assert 'warmzoo_inference_requests_total{model="m",status="200"} 1.0' in metrics
    assert 'warmzoo_inference_requests_total{model="m",status="400"} 1.0' in metrics
