"""A real `warmzoo serve` (API + worker process) on a free port, driven over HTTP and by the CLI.

Tiny networks and a short exact VAA (WARMZOO_VAA_STEPS) keep each job to a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 120


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    http: httpx.Client

    def wait_for(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = JOB_TIMEOUT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.http.get(f"/v1/jobs/{job_id}").json()
            if done(job):
                return job
            assert time.monotonic() < deadline, f"job never got there: {job}"
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "WARMZOO_VAA_STEPS": "50",
        "WARMZOO_VAA_REPEATS": "1",
        "WARMZOO_WORKERS": "1",
        "WARMZOO_JOB_LEASE_S": "5",
        "WARMZOO_WORKER_POLL_S": "0.1",
        "WARMZOO_STARTER_CATALOGUE": "false",
        "WARMZOO_MAX_HIDDEN_SIZE": "64",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("WARMZOO_DATABASE_URL", "WARMZOO_BLOB_STORE", "WARMZOO_DATA_DIR"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=30)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert process.poll() is None, "warmzoo serve exited at start-up"
        try:
            if http.get("/healthz").status_code == 200:
                return Server(url, process, http)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "warmzoo serve did not start"
        time.sleep(0.2)


def stop_server(server: Server) -> None:
    server.http.close()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("zoo"))
    yield running
    stop_server(running)


def warmup(name: str, steps: int = 3, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
        "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
        "warmup": {"steps": steps, "batch_size": 8},
        "device": "cpu",
        **fields,
    }


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
    submitted = http.post("/v1/warmups", json=warmup("e2e-gru"), headers={"Idempotency-Key": "e2e-1"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/jobs/{job_id}"

    events = sse(http, job_id)
    assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded", events[-1]
    steps = [data["step"] for name, data in events if name == "progress"]
    assert steps == sorted(steps) and steps[-1] == 3
    assert {data["status"] for name, data in events if name == "status"} <= {"queued", "running", "succeeded"}

    retry = http.post("/v1/warmups", json=warmup("e2e-gru"), headers={"Idempotency-Key": "e2e-1"})
    assert retry.status_code == 202 and retry.json()["id"] == job_id and retry.json()["status"] == "succeeded"

    result = http.get(f"/v1/jobs/{job_id}").json()["result"]
    assert result == {"model": "e2e-gru", "version": 1}
    version = http.get("/v1/models/e2e-gru/versions/1").json()
    assert len(version["metrics"]["vaa_star_history"]) == 3 and version["metrics"]["vaa_steps"] == 50
    names = [f["name"] for f in version["files"]]
    assert names == ["weights.safetensors", "state_dict.pt", "model.onnx", "cell.onnx", "README.md"]
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
    assert pulled == tmp_path / "model.onnx" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    etag = server.http.head("/v1/models/e2e-cli/versions/1/files/model.onnx").headers["etag"].strip('"')
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == etag


def test_the_cli_infers(server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server.wait_for(
        server.http.post("/v1/warmups", json=warmup("e2e-infer")).json()["id"], lambda j: j["status"] == "succeeded"
    )
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 1), np.float32))
    outputs = json.loads(cli(capsys, server, "infer", "e2e-infer:1", "--input", str(tmp_path / "x.npy")))
    assert np.asarray(outputs["output"]).shape == (2, 5, 1)


def test_cancel_a_running_job(server: Server) -> None:
    job_id = server.http.post("/v1/warmups", json=warmup("e2e-cancel", steps=100_000)).json()["id"]
    server.wait_for(job_id, lambda job: job["progress"]["step"] >= 1)
    canceled = server.http.post(f"/v1/jobs/{job_id}/cancel")
    assert canceled.status_code == 202 and canceled.json()["cancel_requested"] is True
    job = server.wait_for(job_id, lambda job: job["status"] != "running", timeout=30)
    assert job["status"] == "canceled" and job["progress"]["step"] < 100_000
    assert server.http.get("/v1/models/e2e-cancel").status_code == 404


def test_a_killed_worker_is_replaced_and_the_job_publishes_exactly_once(server: Server) -> None:
    job_id = server.http.post("/v1/warmups", json=warmup("e2e-crash", steps=40)).json()["id"]
    running = server.wait_for(job_id, lambda job: job["progress"]["step"] >= 1)
    os.kill(int(running["worker"].split(":")[1]), signal.SIGKILL)
    job = server.wait_for(job_id, lambda job: job["status"] not in ("queued", "running"))
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"model": "e2e-crash", "version": 1})
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
    answer = server.http.post("/v1/warmups", json=warmup("e2e-bad", **change))
    assert answer.status_code == status
    assert answer.json()["field"] == field and field.split(".")[-1] in answer.json()["error"]
