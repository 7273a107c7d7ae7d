"""A real `warmzoo serve` on loopback for the benchmarks that measure the HTTP path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import weights_bytes

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(**overrides: str) -> Iterator[str]:
    """`warmzoo serve` on a fresh data dir and a free port, stopped (SIGTERM) afterwards;
    `overrides` replace environment variables of the defaults below."""
    with server_process(**overrides) as (url, _):
        yield url


@contextmanager
def server_process(**overrides: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`local_server`'s URL and the `warmzoo serve` process itself (its API runs in it when
    WARMZOO_API_PROCESSES is 1), for benchmarks that read its memory."""
    port = free_port()
    env = {
        **os.environ,
        "WARMZOO_WORKERS": "1",
        "WARMZOO_STARTER_CATALOGUE": "false",
        "WARMZOO_RATE_LIMIT_PER_S": "0",
        "WARMZOO_VAA_STEPS": "50",
        "WARMZOO_VAA_REPEATS": "1",
        "WARMZOO_LOG_LEVEL": "warning",
        "OMP_NUM_THREADS": "1",
        **overrides,
    }
    with tempfile.TemporaryDirectory() as data_dir:
        command = [sys.executable, "-m", "warmzoo.service.cli.main", "serve", "--port", str(port), "--data-dir", data_dir]
        with open(Path(data_dir) / "server.log", "wb") as log:
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if server.poll() is not None:
                    sys.exit(f"warmzoo serve exited:\n{(Path(data_dir) / 'server.log').read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("warmzoo serve did not start within 90 s")
                time.sleep(0.2)
            yield url, server
        finally:
            server.terminate()
            server.wait(timeout=60)


def publish(url: str, model: str, spec: RNNSpec) -> None:
    """Upload a fresh `spec` network as version 1 of `model` and wait until it is served."""
    weights = weights_bytes(build_network(spec, seed=0))
    answer = httpx.post(f"{url}/v1/models/{model}/versions", files={"weights": ("w.safetensors", weights)})
    answer.raise_for_status()
    ready = httpx.get(f"{url}/v2/models/{model}/ready", timeout=120)  # exports and loads the ONNX session
    ready.raise_for_status()
