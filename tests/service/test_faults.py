"""Faults: a server killed mid-upload, a database that goes away and comes back, a full disk.
Each must leave the registry consistent (no row without its blob, no partial blob) and the API
answering with a clear JSON error while it lasts.

A worker killed mid-job is test_e2e.py's test_a_killed_worker_is_replaced_and_the_job_publishes_exactly_once
(retried, exactly one version); `warmzoo fsck` itself is test_fsck.py's.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from tests.helpers.factories import tiny_weights
from tests.helpers.server import Server, start_server
from tests.helpers.skips import unavailable
from tests.helpers.snapshots import store_state
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.fsck import fsck

MiB = 1024 * 1024


def npy_bytes(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return buffer.getvalue()


def multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """(body, content type) of a one-file multipart/form-data upload."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send_upload(server: Server, body: bytes, content_type: str, sent_fraction: float) -> socket.socket:
    """Start a POST /v1/datasets and send that fraction of its body; the socket stays open."""
    port = int(server.url.rsplit(":", 1)[1])
    connection = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode() + body[: int(len(body) * sent_fraction)])
    return connection


def kill(server: Server) -> None:
    """SIGKILL the API process: no shutdown handler runs (its worker exits once it sees the orphaning)."""
    server.http.close()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)


@pytest.mark.e2e
def test_a_server_killed_during_a_large_upload_leaves_nothing_dangling(tmp_path: Path) -> None:
    data_dir = tmp_path / "zoo"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    blobs = LocalBlobStore(settings.blob_store)
    body, content_type = multipart("file", "big.npy", npy_bytes((128, 1000, 64)))  # 32 MiB

    server = start_server(data_dir)
    before = store_state(settings.database_url, blobs)
    connection = send_upload(server, body, content_type, sent_fraction=0.5)
    time.sleep(0.5)  # the server is reading the body
    kill(server)
    connection.close()
    assert store_state(settings.database_url, blobs) == before  # mid-body: not a trace

    # Killed while the blob is being written: the temporary file is all that is left (never a
    # partial blob under a real name, never a row), and fsck removes it.
    server = start_server(data_dir, log_name="server2.log")
    connection = send_upload(server, body, content_type, sent_fraction=1.0)
    deadline = time.monotonic() + 30
    while not list(blobs.leftovers()):
        assert time.monotonic() < deadline, "the server never started writing the blob"
        time.sleep(0.002)
    kill(server)
    connection.close()
    crashed = store_state(settings.database_url, blobs)
    assert (crashed.rows, crashed.blobs) == (before.rows, before.blobs) and len(crashed.leftovers) == 1
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        report = fsck(session, blobs, repair=True, grace=timedelta(0))
    engine.dispose()
    assert [(f.problem, f.repaired) for f in report.findings] == [("leftover", True)]
    assert store_state(settings.database_url, blobs) == before


class ToggleProxy:
    """A TCP proxy on 127.0.0.1 in front of a database server; `stop()` makes the database
    unreachable (listener and every open connection closed), `start()` brings it back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._track(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _track(self, s: socket.socket) -> None:
        with self.lock:
            self.sockets.append(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return  # stopped
            self._track(client)
            self._track(server)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxied_postgres(postgres_url: str) -> Iterator[tuple[str, ToggleProxy]]:
    url = make_url(postgres_url)
    proxy = ToggleProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.stop()


@pytest.mark.postgres
def test_an_unreachable_database_is_a_503_and_the_api_recovers(
    proxied_postgres: tuple[str, ToggleProxy], tmp_path: Path
) -> None:
    url, proxy = proxied_postgres
    settings = Settings(data_dir=tmp_path, database_url=url, auth="off", rate_limit_per_s=0)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models").status_code == 200
        proxy.stop()
        for answer in (client.get("/v1/models"), client.get("/healthz"), client.get("/v1/jobs/x")):
            assert answer.status_code == 503, answer.text
            body = answer.json()
            assert body["code"] == "database_unavailable" and "database is unreachable" in body["error"], body
            assert answer.headers["retry-after"].isdigit()
        proxy.start()  # same port: the app is not restarted, its pool reconnects
        assert client.get("/v1/models").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs); skipped where mounting is not permitted (not root), except
    under CI=true (root), where that is a failure: the 507 test must not silently never run."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root or CAP_SYS_ADMIN")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_full_blob_store_is_a_507_and_nothing_is_half_written(tiny_filesystem: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", blob_store=str(tiny_filesystem), auth="off", rate_limit_per_s=0)
    with TestClient(create_app(settings)) as client:
        before = store_state(settings.database_url, client.app.state.blobs)  # type: ignore[attr-defined]
        too_big = npy_bytes((4, 1000, 80))  # 1.2 MiB
        answer = client.post("/v1/datasets", files={"file": ("big.npy", too_big)})
        assert answer.status_code == 507, answer.text
        body = answer.json()
        assert body["code"] == "storage_full" and "no space left" in body["error"].lower(), body
        assert store_state(settings.database_url, client.app.state.blobs) == before  # type: ignore[attr-defined]
        assert [p for p in tiny_filesystem.rglob("*") if p.is_file()] == []

        fits = client.post("/v1/models/after-full/versions", files={"weights": ("w.safetensors", tiny_weights())})
        assert fits.status_code == 201, fits.text  # the store works again once the write is undone
