"""Streaming sequences shared through Redis: by two `warmzoo serve` replicas (one data dir), and by
the API processes of one server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.payloads import outputs, tensor
from tests.helpers.server import START_TIMEOUT_S, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def _publish(http: httpx.Client, model: str) -> str:
    """Upload a tiny network (2 inputs, 2 x 4) as version 1 of `model`; its infer path."""
    spec = tiny_spec(input_size=2, hidden_size=4, num_layers=2)
    published = http.post(
        f"/v1/models/{model}/versions",
        data={"spec": spec.model_dump_json()},
        files={"weights": ("w.safetensors", tiny_weights(spec))},
    )
    assert published.status_code in (200, 201), published.text
    return f"/v2/models/{model}/versions/1/infer"


def test_replicas_share_streaming_sequences_through_redis(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    shared = {
        "WARMZOO_SEQUENCE_STORE": "redis",
        "WARMZOO_REDIS_URL": url,
        "WARMZOO_REDIS_KEY_PREFIX": prefix,
        "WARMZOO_WORKERS": "0",
    }
    # One after the other: the second finds the database already migrated.
    first = start_server(tmp_path, "first.log", **shared)
    try:
        second = start_server(tmp_path, "second.log", **shared)
        try:
            path = _publish(first.http, "e2e-redis")

            x = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
            whole = outputs(second.http.post(path, json={"inputs": [tensor(x)]}))
            steps = x.shape[1]
            streamed = []
            for t in range(steps):
                replica = (first, second)[t % 2]
                parameters = {"sequence_id": "shared", "sequence_start": t == 0, "sequence_end": t == steps - 1}
                request = {"parameters": parameters, "inputs": [tensor(x[:, t : t + 1])]}
                step = outputs(replica.http.post(path, json=request))
                streamed.append(step["output"])
            np.testing.assert_allclose(np.concatenate(streamed, axis=1), whole["output"], atol=1e-5)
            np.testing.assert_allclose(step["state"], whole["state"], atol=1e-5)

            # Ended on the second replica, so the first no longer knows it either.
            request = {"parameters": {"sequence_id": "shared"}, "inputs": [tensor(x[:, :1])]}
            after_end = first.http.post(path, json=request)
            assert after_end.status_code == 400 and after_end.json()["code"] == "unknown_sequence"
        finally:
            stop_server(second)
    finally:
        stop_server(first)


def _requests_by_process(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests each API process has counted on `route`, from the files they share with /metrics."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict(str(path), read_mode=True)
        try:
            counts[path.stem] = sum(
                value
                for key, value, *_ in values.read_all_values()
                if json.loads(key)[0] == "warmzoo_http_requests" and json.loads(key)[2]["route"] == route
            )
        finally:
            values.close()
    return counts


def test_api_processes_share_sequences_and_metrics(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    """`serve` with two API processes on one port: each request on a fresh connection reaches
    either; a sequence streamed that way equals the whole sequence, and /metrics counts both."""
    url, prefix = redis_prefix
    server = start_server(
        tmp_path,
        WARMZOO_API_PROCESSES="2",
        WARMZOO_SEQUENCE_STORE="redis",
        WARMZOO_REDIS_URL=url,
        WARMZOO_REDIS_KEY_PREFIX=prefix,
        WARMZOO_WORKERS="0",
    )
    try:
        # /healthz answered once one process was up; the other may still be starting.
        deadline = time.monotonic() + START_TIMEOUT_S
        while sum(line["message"] == "Application startup complete." for line in server.log_lines()) < 2:
            assert time.monotonic() < deadline, "the second API process did not start"
            time.sleep(0.2)
        grpc_starts = [line for line in server.log_lines() if line.get("event") == "grpc.start"]
        assert len(grpc_starts) == 2, "both processes serve gRPC on the one port (SO_REUSEPORT)"
        path = _publish(server.http, "e2e-procs")
        x = np.random.default_rng(0).standard_normal((2, 12, 2)).astype(np.float32)
        whole = outputs(server.http.post(path, json={"inputs": [tensor(x)]}))
        streamed = []
        for t in range(x.shape[1]):
            parameters = {"sequence_id": "procs", "sequence_start": t == 0, "sequence_end": t == x.shape[1] - 1}
            with httpx.Client(base_url=server.url, timeout=30) as fresh:  # a new connection each step
                step = outputs(fresh.post(path, json={"parameters": parameters, "inputs": [tensor(x[:, t : t + 1])]}))
            streamed.append(step["output"])
        np.testing.assert_allclose(np.concatenate(streamed, axis=1), whole["output"], atol=1e-5)

        route = "/v2/models/{name}/versions/{version}/infer"
        served = _requests_by_process(tmp_path / "prometheus", route)
        assert len(served) == 2 and all(served.values()), f"one process took every step: {served}"
        total = f'warmzoo_http_requests_total{{method="POST",route="{route}",status="200"}}'
        assert f"{total} {float(x.shape[1] + 1)}" in server.http.get("/metrics").text
    finally:
        stop_server(server)


def test_api_processes_refuse_sequences_in_memory(tmp_path: Path) -> None:
    """Each process would hold its own sequences: a sequence's next step could find none."""
    result = subprocess.run(
        [sys.executable, "-m", "warmzoo.service.cli.main", "serve", "--port", "1", "--data-dir", str(tmp_path)],
        env={**os.environ, "WARMZOO_API_PROCESSES": "2", "WARMZOO_SEQUENCE_STORE": "memory"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "WARMZOO_SEQUENCE_STORE=redis" in result.stderr
