"""A real `warmzoo serve` on loopback for the benchmarks that measure the HTTP path, started by the
tests' launcher (tests/helpers/server.py) with the benchmarks' settings."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers.server import running_server
from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import weights_bytes

# No rate limit, the service's own limits and leases, and a short exact VAA for the jobs.
BENCH_SETTINGS = {
    "WARMZOO_WORKERS": "1",
    "WARMZOO_STARTER_CATALOGUE": "false",
    "WARMZOO_RATE_LIMIT_PER_S": "0",
    "WARMZOO_VAA_STEPS": "50",
    "WARMZOO_VAA_REPEATS": "1",
    "OMP_NUM_THREADS": "1",
}


@contextmanager
def local_server(grpc_port: int = 0, **overrides: str) -> Iterator[str]:
    """`warmzoo serve` on a fresh data dir and a free port, stopped (SIGTERM) afterwards;
    `overrides` replace environment variables of BENCH_SETTINGS. gRPC /v2 only on a `grpc_port`
    asked for (several benchmark servers may run at once)."""
    with server_process(grpc_port, **overrides) as (url, _):
        yield url


@contextmanager
def server_process(grpc_port: int = 0, **overrides: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`local_server`'s URL and the `warmzoo serve` process itself (its API runs in it when
    WARMZOO_API_PROCESSES is 1), for benchmarks that read its memory."""
    with tempfile.TemporaryDirectory() as data_dir:
        options = {"settings": BENCH_SETTINGS, "log_level": "warning", "grpc_port": grpc_port}
        with running_server(Path(data_dir), **options, **overrides) as server:
            yield server.url, server.process


def publish(url: str, model: str, spec: RNNSpec) -> None:
    """Upload a fresh `spec` network as version 1 of `model` and wait until it is served."""
    weights = weights_bytes(build_network(spec, seed=0))
    answer = httpx.post(f"{url}/v1/models/{model}/versions", files={"weights": ("w.safetensors", weights)})
    answer.raise_for_status()
    ready = httpx.get(f"{url}/v2/models/{model}/ready", timeout=120)  # exports and loads the ONNX session
    ready.raise_for_status()
