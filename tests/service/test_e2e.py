"""A real `warmzoo serve` (API + worker process) on a free port, driven over HTTP and by the CLI.

Tiny networks and a short exact VAA (WARMZOO_VAA_STEPS) keep each job to a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.payloads import outputs, tensor, warmup_on_cpu
from tests.helpers.server import JOB_TIMEOUT_S, Server, start_server, stop_server
from warmzoo.service.cli.main import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("zoo"))
    yield running
    stop_server(running)


def sse(http: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the job's stream, until the server closes it."""
    events, name = [], ""
    with http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(10, read=JOB_TIMEOUT_S)) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_warmup_events_version_and_every_file(server: Server) -> None:
    http = server.http
    submitted = http.post("/v1/warmups", json=warmup_on_cpu("e2e-gru"), headers={"Idempotency-Key": "e2e-1"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/jobs/{job_id}"

    events = sse(http, job_id)
    assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded", events[-1]
    progress = [data for name, data in events if name == "progress"]
    phases = [data["phase"] for data in progress if data["phase"]]
    assert phases == sorted(phases, key=progress[-1]["phases"].index)  # the phases in order
    for phase in set(phases):  # snapshots of a polled row: a phase's steps never go back
        steps = [data["step"] for data in progress if data["phase"] == phase]
        assert steps == sorted(steps)
    last = progress[-1]
    assert (last["phase"], last["step"]) == ("exporting", last["total"])
    assert {data["status"] for name, data in events if name == "status"} <= {"queued", "running", "succeeded"}

    retry = http.post("/v1/warmups", json=warmup_on_cpu("e2e-gru"), headers={"Idempotency-Key": "e2e-1"})
    assert retry.status_code == 202 and retry.json()["id"] == job_id and retry.json()["status"] == "succeeded"

    result = http.get(f"/v1/jobs/{job_id}").json()["result"]
    assert (result["model"], result["version"]) == ("e2e-gru", 1) and result["outcome"]["summary"]
    version = http.get("/v1/models/e2e-gru/versions/1").json()
    assert len(version["metrics"]["vaa_star_history"]) == 3 and version["metrics"]["vaa_steps"] == 50
    names = [f["name"] for f in version["files"]]
    assert names == [
        "weights.safetensors", "state_dict.pt", "model.onnx", "cell.onnx", "torch.safetensors", "modeling.py", "hf.zip",
        "README.md",
    ]  # fmt: skip
    for name in names:
        download = http.get(f"/v1/models/e2e-gru/versions/1/files/{name}", timeout=120)
        assert download.status_code == 200, (name, download.text)
        digest = hashlib.sha256(download.content).hexdigest()
        assert download.headers["etag"].strip('"') == digest, name
    listed = {f["name"]: f["sha256"] for f in http.get("/v1/models/e2e-gru/versions/1").json()["files"]}
    assert listed["weights.safetensors"] == version["sha256"]
    assert all(listed.values())  # every file is stored now, under its hash


def cli(capsys: pytest.CaptureFixture[str], server: Server, *args: str) -> str:
    """Run a client verb in this process (the lead's CLI test covers `python -m service.cli` itself)."""
    capsys.readouterr()
    assert main([*args, "--server", server.url]) == 0
    return capsys.readouterr().out


def test_the_cli_submits_lists_and_pulls(server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    flags = "--cell brc --hidden-size 4 --task copy_first_input --seq-length 12 --num-samples 16 --steps 2"
    out = cli(capsys, server, "submit", *flags.split(), "--name", "e2e-cli", "--device", "cpu")
    assert out.startswith("e2e-cli:1  VAA ")
    assert "e2e-cli" in cli(capsys, server, "ls")
    assert cli(capsys, server, "ls", "e2e-cli").splitlines()[1].split()[:2] == ["1", "brc"]
    pulled = Path(cli(capsys, server, "pull", "e2e-cli:1", "--format", "onnx", "--out", str(tmp_path)).strip())
    folder = tmp_path / "e2e-cli" / "v1"
    assert pulled == folder / "model.onnx" and [p.name for p in folder.iterdir()] == ["model.onnx"]
    etag = server.http.head("/v1/models/e2e-cli/versions/1/files/model.onnx").headers["etag"].strip('"')
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == etag


def test_the_cli_infers(server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server.wait_for(
        server.http.post("/v1/warmups", json=warmup_on_cpu("e2e-infer")).json()["id"], lambda j: j["status"] == "succeeded"
    )
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 1), np.float32))
    outputs = json.loads(cli(capsys, server, "infer", "e2e-infer:1", "--input", str(tmp_path / "x.npy")))
    assert np.asarray(outputs["output"]).shape == (2, 5, 1)


def test_cancel_a_running_job(server: Server) -> None:
    job_id = server.http.post("/v1/warmups", json=warmup_on_cpu("e2e-cancel", steps=100_000)).json()["id"]
    server.wait_for(job_id, lambda job: job["progress"]["step"] >= 1)
    canceled = server.http.post(f"/v1/jobs/{job_id}/cancel")
    assert canceled.status_code == 202 and canceled.json()["cancel_requested"] is True
    job = server.wait_for(job_id, lambda job: job["status"] != "running", timeout=30)
    assert job["status"] == "canceled" and job["progress"]["step"] < 100_000
    assert server.http.get("/v1/models/e2e-cancel").status_code == 404
    lines = server.wait_for_log(lambda line: line.get("job_id") == job_id and line["event"] == "job.canceled")
    assert [line["event"] for line in lines if line.get("job_id") == job_id][0] == "job.claimed"


def test_a_killed_worker_is_replaced_and_the_job_publishes_exactly_once(server: Server) -> None:
    job_id = server.http.post("/v1/warmups", json=warmup_on_cpu("e2e-crash", steps=400)).json()["id"]
    running = server.wait_for(job_id, lambda job: job["progress"]["phase"] == "warming_up" and job["progress"]["step"] >= 1)
    os.kill(int(running["worker"].split(":")[1]), signal.SIGKILL)
    job = server.wait_for(job_id, lambda job: job["status"] not in ("queued", "running"))
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert (job["result"]["model"], job["result"]["version"]) == ("e2e-crash", 1)
    assert server.http.get("/v1/models/e2e-crash/versions").json()["total"] == 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"spec": {"cell": "lstmx", "input_size": 1, "hidden_size": 4}}, 422, "spec.cell"),
        ({"spec": {"cell": "gru", "input_size": 1, "hidden_size": 65}}, 422, "spec.hidden_size"),
        ({"data": {"task": "copy_first_input", "seq_length": 0, "num_samples": 16}}, 422, "data.seq_length"),
        ({"data": {"dataset": "0d9f4bc6-0000-0000-0000-000000000000"}}, 404, "data.dataset"),
    ],
)
def test_bad_requests_get_json_errors_naming_the_field(
    server: Server, change: dict[str, Any], status: int, field: str
) -> None:
    answer = server.http.post("/v1/warmups", json=warmup_on_cpu("e2e-bad", **change))
    assert answer.status_code == status
    assert answer.json()["field"] == field and field.split(".")[-1] in answer.json()["error"]


OIP_MODEL = "e2e-oip"


@pytest.fixture(scope="module")
def oip_version(server: Server) -> str:
    """One tiny published version (two GRU layers) for the inference checks: its /v2 URL."""
    body = warmup_on_cpu(OIP_MODEL, steps=2, spec={"cell": "gru", "input_size": 1, "hidden_size": 4, "num_layers": 2})
    job = server.wait_for(server.http.post("/v1/warmups", json=body).json()["id"], lambda j: j["status"] != "queued")
    job = server.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
    assert (job["result"]["model"], job["result"]["version"]) == (OIP_MODEL, 1), job
    return f"/v2/models/{OIP_MODEL}/versions/1"


def test_the_server_speaks_oip_and_matches_onnxruntime_whole_and_streamed(server: Server, oip_version: str) -> None:
    http = server.http
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    server_metadata = http.get("/v2").json()
    assert server_metadata["name"] == "warmzoo" and "sequence" in server_metadata["extensions"]
    metadata = http.get(oip_version).json()
    assert (metadata["name"], metadata["versions"], metadata["platform"]) == (OIP_MODEL, ["1"], "onnxruntime_onnx")
    assert {t["name"]: t["shape"] for t in metadata["inputs"]}["input"] == [-1, -1, 1]
    assert {t["name"] for t in metadata["outputs"]} == {"output", "state"}
    assert http.get(f"{oip_version}/ready").json() == {"name": OIP_MODEL, "ready": True}

    download = http.get(f"/v1/models/{OIP_MODEL}/versions/1/files/model.onnx")
    assert hashlib.sha256(download.content).hexdigest() == download.headers["etag"].strip('"')
    local = ort.InferenceSession(download.content, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 7, 1)).astype(np.float32)
    expected_output, expected_state = local.run(["output", "state_out"], {"input": x})  # zero initial state

    answer = http.post(f"{oip_version}/infer", json={"id": "e2e-1", "inputs": [tensor(x)]})
    served = outputs(answer)
    assert answer.json()["id"] == "e2e-1" and answer.json()["model_version"] == "1"
    np.testing.assert_allclose(served["output"], expected_output, atol=1e-5)
    np.testing.assert_allclose(served["state"], expected_state, atol=1e-5)
    assert served["state"].shape == (2, 2, 4)  # [num_layers, batch, hidden]

    steps = x.shape[1]
    streamed = []
    for t in range(steps):
        parameters = {"sequence_id": "e2e-stream", "sequence_start": t == 0, "sequence_end": t == steps - 1}
        request = {"parameters": parameters, "inputs": [tensor(x[:, t : t + 1])]}
        step = outputs(http.post(f"{oip_version}/infer", json=request))
        streamed.append(step["output"])
    np.testing.assert_allclose(np.concatenate(streamed, axis=1), expected_output, atol=1e-5)
    np.testing.assert_allclose(step["state"], expected_state, atol=1e-5)
    after_end = http.post(
        f"{oip_version}/infer", json={"parameters": {"sequence_id": "e2e-stream"}, "inputs": [tensor(x[:, :1])]}
    )
    assert after_end.status_code == 400 and after_end.json()["code"] == "unknown_sequence"

    assert http.get("/healthz", headers={"X-Request-ID": "e2e-trace"}).headers["x-request-id"] == "e2e-trace"
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }

    def metric(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    route = "/v2/models/{name}/versions/{version}/infer"
    assert metric("warmzoo_http_requests_total", method="POST", route=route, status="200") >= 1 + steps
    assert metric("warmzoo_http_requests_total", method="POST", route=route, status="400") >= 1
    assert metric("warmzoo_inference_requests_total", model=OIP_MODEL, status="200") >= 1 + steps
    assert metric("warmzoo_inference_request_duration_seconds_count", model=OIP_MODEL) >= 2 + steps
    assert metric("warmzoo_jobs", status="succeeded", kind="warmup") >= 1
    assert ("warmzoo_job_queue_depth", frozenset()) in samples
    assert metric("warmzoo_inference_open_sequences") == 0


def test_the_server_and_its_workers_write_json_logs(server: Server, oip_version: str) -> None:
    server.http.get(f"{oip_version}/ready", headers={"X-Request-ID": "e2e-log"})
    listed = server.http.get("/v1/jobs", params={"limit": 100}).json()["items"]
    job_id = next(job["id"] for job in listed if (job["result"] or {}).get("model") == OIP_MODEL)
    lines = server.wait_for_log(lambda line: line.get("request_id") == "e2e-log")
    (access,) = [line for line in lines if line.get("request_id") == "e2e-log"]
    assert access["event"] == "http.request" and access["route"] == "/v2/models/{name}/versions/{version}/ready"
    assert access["status"] == 200 and access["duration_ms"] >= 0 and access["logger"] == "warmzoo.access"
    events = [line["event"] for line in lines if line.get("job_id") == job_id]
    assert events[0] == "job.claimed" and events[-1] == "job.succeeded", events
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
