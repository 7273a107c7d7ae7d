"""What the server tells whom: security headers on every answer, Swagger UI without a CDN, no
worker host or process id for strangers, job errors without internal detail, owned data sets."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs import queue, runner
from warmzoo.service.jobs.worker import Worker
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security import auth

WARMUP = {
    "name": "disclosed",
    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
    "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
    "warmup": {"steps": 2, "batch_size": 8},
}


@pytest.fixture
def secure(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, auth="on", rate_limit_per_s=0, vaa_steps=20, vaa_repeats=1)


@pytest.fixture
def keys(secure: Settings) -> dict[str, dict[str, str]]:
    upgrade_database(secure)
    engine = make_engine(secure.database_url)
    with session_factory(engine)() as session:
        made = {who: auth.create_key(session, who, scope)[1] for who, scope in
                (("alice", "write"), ("bob", "write"), ("root", "admin"))}  # fmt: skip
    engine.dispose()
    return {who: {"Authorization": f"Bearer {key}"} for who, key in made.items()}


@pytest.fixture
def api(secure: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(secure)) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/ui/static/js/app.js", "/docs", "/openapi.json", "/v1/models", "/v1/nowhere"])
def test_every_answer_carries_the_security_headers(api: TestClient, path: str) -> None:
    headers = api.get(path).headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "default-src 'self'" in policy
    assert headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_is_served_from_the_package_with_no_inline_script(api: TestClient) -> None:
    page = api.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    sources = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") for source in sources), sources  # nothing from another origin
    assert re.search(r"<script>", page.text) is None  # every script has a src: the policy forbids inline ones
    for source in sources:
        asset = api.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert api.get("/redoc").status_code == 404  # ReDoc would need a CDN: there is none


def test_the_worker_of_a_job_is_shown_to_its_owner_and_admins_only(
    api: TestClient, keys: dict[str, dict[str, str]], secure: Settings
) -> None:
    job = api.post("/v1/warmups", json=WARMUP, headers=keys["alice"]).json()
    engine = make_engine(secure.database_url)
    with session_factory(engine)() as session:
        queue.claim(session, "host-1:4242:abcd", lease_s=600)  # running on a worker now
    engine.dispose()
    seen = {who: api.get(f"/v1/jobs/{job['id']}", headers=keys.get(who, {})).json()["worker"]
            for who in ("alice", "root", "bob", "anonymous")}  # fmt: skip
    assert seen == {"alice": "host-1:4242:abcd", "root": "host-1:4242:abcd", "bob": None, "anonymous": None}
    assert api.get("/v1/jobs").json()["items"][0]["worker"] is None


def test_a_failed_job_says_what_happened_without_internal_detail(
    api: TestClient,
    keys: dict[str, dict[str, str]],
    secure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot open /srv/secret/cache.bin on db-host-7")

    monkeypatch.setattr(runner, "warmup", crash)
    job = api.post("/v1/warmups", json=WARMUP, headers=keys["alice"]).json()
    with caplog.at_level(logging.ERROR):
        Worker(secure).run_once()
    error = api.get(f"/v1/jobs/{job['id']}").json()["error"]
    assert error["code"] == "internal" and "server log" in error["error"], error
    assert "secret" not in str(error) and "RuntimeError" not in str(error)
    assert "/srv/secret/cache.bin" in caplog.text  # the detail is for the operator, in the log

    assert runner.unexpected_failure(MemoryError()).code == "out_of_memory"


def test_a_data_set_belongs_to_who_uploaded_it(api: TestClient, keys: dict[str, dict[str, str]]) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 8, 1), dtype=np.float32))
    answer = api.post("/v1/datasets", files={"file": ("d.npy", buffer.getvalue())}, headers=keys["bob"])
    assert answer.status_code == 201, answer.text
    assert answer.json()["owner"] == "bob"
    assert api.get(f"/v1/datasets/{answer.json()['id']}").json()["owner"] == "bob"
