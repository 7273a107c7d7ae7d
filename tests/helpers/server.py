"""A real `warmzoo serve` (API + worker processes) on a free loopback port: the one launcher of
the end-to-end tests, the UI tests and the benchmarks that measure the HTTP path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 120
# The tests' settings: tiny limits, a short exact VAA and short leases keep each job to seconds.
TEST_SETTINGS = {
    "WARMZOO_VAA_STEPS": "50",
    "WARMZOO_VAA_REPEATS": "1",
    "WARMZOO_WORKERS": "1",
    "WARMZOO_JOB_LEASE_S": "5",
    "WARMZOO_WORKER_POLL_S": "0.1",
    "WARMZOO_STARTER_CATALOGUE": "false",
    "WARMZOO_MAX_HIDDEN_SIZE": "64",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    http: httpx.Client
    log: Path  # the server's and its workers' stdout and stderr (JSON log lines)
    grpc: str = ""  # host:port of its gRPC /v2 ("": none)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else, e.g. a library's print, is skipped)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_log(self, found: Callable[[dict[str, Any]], bool], timeout: float = 10) -> list[dict[str, Any]]:
        """The log lines once one of them is `found` (a process logs just after it acts)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines()
            if any(found(line) for line in lines):
                return lines
            assert time.monotonic() < deadline, "the log line never came"
            time.sleep(0.1)

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


class ServerFailed(RuntimeError):
    """`warmzoo serve` exited or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    data_dir: Path,
    log_name: str = "server.log",
    *,
    settings: dict[str, str] = TEST_SETTINGS,
    log_level: str = "info",
    grpc_port: int | None = None,
    **overrides: str,
) -> Server:
    """`warmzoo serve` on `data_dir` with `settings` (WARMZOO_* variables) and `overrides` on top,
    e.g. WARMZOO_WORKERS="0". The store comes from the data dir: an inherited database URL or blob
    store is dropped. gRPC /v2 on `grpc_port`: by default a free port, 0 none."""
    port = free_port()
    grpc_port = free_port() if grpc_port is None else grpc_port
    env = {**os.environ, **settings, **overrides}
    for name in ("WARMZOO_DATABASE_URL", "WARMZOO_BLOB_STORE", "WARMZOO_DATA_DIR"):
        if name not in overrides:
            env.pop(name, None)
    command = [sys.executable, "-m", "warmzoo.service.cli.main", "serve", "--port", str(port)]
    command += ["--grpc-port", str(grpc_port), "--data-dir", str(data_dir), "--log-level", log_level]
    log = data_dir / log_name
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    grpc = f"127.0.0.1:{grpc_port}" if grpc_port else ""
    http = httpx.Client(base_url=url, timeout=30)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            http.close()
            raise ServerFailed(f"warmzoo serve exited at start-up:\n{log.read_text()[-5000:]}")
        try:
            if http.get("/healthz").status_code == 200:
                return Server(url, process, http, log, grpc)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(Server(url, process, http, log))
            raise ServerFailed(f"warmzoo serve did not start in {START_TIMEOUT_S} s:\n{log.read_text()[-5000:]}")
        time.sleep(0.2)


def stop_server(server: Server) -> None:
    server.http.close()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)


@contextmanager
def running_server(data_dir: Path, **options: Any) -> Iterator[Server]:
    """`start_server` for the length of a `with` block."""
    server = start_server(data_dir, **options)
    try:
        yield server
    finally:
        stop_server(server)
