"""An open event stream holds no database connection, and a request that finds the pool taken
is a 503 with Retry-After: no number of followers, anonymous or not, can stall the API."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.helpers.server import start_server, stop_server
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import NewJob
from warmzoo.service.jobs.watch import JobWatch
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database

EXPORT = NewJob("export", {"model": "m", "version": 1, "files": ["model.onnx"]}, 1)
WARMUP = {
    "name": "followed",
    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
    "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
}


def _count_queries(engine: Engine) -> list[str]:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_followers_of_a_job_hold_no_connection_and_share_one_poll(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    with sessions() as session:
        job, _ = lifecycle.submit(session, EXPORT, settings)
    queries = _count_queries(engine)

    async def follow() -> list[Any]:
        watch = JobWatch(sessions, poll_s=0.3)
        streams = [watch.follow(job.id) for _ in range(200)]
        for _ in range(3):
            assert {(await anext(stream)).status for stream in streams} == {"queued"}
            assert engine.pool.checkedout() == 0  # between polls nothing is held, however many follow
        polls = len(queries)
        with sessions() as session:
            lifecycle.cancel(session, job.id)
        ended = [[row.status async for row in stream] for stream in streams]
        assert ended == [["canceled"]] * 200  # every follower sees the end, then its stream stops
        return [polls]

    [polls] = asyncio.run(follow())
    assert polls <= 4  # one read per poll for all 200 followers (3 rounds), not one per follower
    engine.dispose()


def test_a_request_that_finds_every_connection_taken_is_a_503_database_busy(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth="off", rate_limit_per_s=0, database_pool_timeout_s=0.2)
    with TestClient(create_app(settings)) as client:
        engine: Engine = client.app.state.sessions.kw["bind"]  # type: ignore[attr-defined]
        held = []
        try:
            while True:  # the pool and its overflow, all taken
                held.append(engine.connect())
        except PoolTimeout:
            pass
        answer = client.get("/v1/models")
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert answer.json()["code"] == "database_busy"
        for connection in held:
            connection.close()
        assert client.get("/v1/models").status_code == 200


@pytest.mark.e2e
def test_many_open_event_streams_leave_the_api_responsive(tmp_path: Path) -> None:
    """Before: about 30 streams took the whole pool and every other request waited 30 s, then failed."""
    server = start_server(tmp_path, WARMZOO_WORKERS="0", WARMZOO_RATE_LIMIT_PER_S="0")  # the job stays queued
    try:
        job = server.http.post("/v1/warmups", json=WARMUP).json()

        async def measure() -> list[float]:
            opened = 0

            async def stream(client: httpx.AsyncClient) -> None:
                nonlocal opened
                async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as answer:
                    assert answer.status_code == 200
                    opened += 1
                    async for _ in answer.aiter_bytes():
                        pass

            limits = httpx.Limits(max_connections=None)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
                streams = [asyncio.create_task(stream(client)) for _ in range(60)]
                while opened < 60:
                    await asyncio.sleep(0.05)
                latencies = []
                for _ in range(10):
                    start = time.perf_counter()
                    assert (await client.get("/v1/models")).status_code == 200
                    latencies.append(time.perf_counter() - start)
                for task in streams:
                    task.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
            return latencies

        latencies = asyncio.run(measure())
        assert statistics.median(latencies) < 1.0, latencies  # a loaded 2-core test box; about 10 ms idle
    finally:
        stop_server(server)
