"""Limits and quotas: every cap is checked before any work and named in its 4xx; request rates
(token buckets, 429 + Retry-After), active jobs per key, and JSON body sizes."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.helpers.clock import Clock
from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.payloads import warmup
from tests.helpers.threads import run_in_threads
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import NewJob
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security import auth, ratelimit
from warmzoo.service.security.ratelimit import TokenBuckets


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock(now=100.0)
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 1 / rate seconds
    assert buckets.take("b") == 0.0  # buckets are per identity
    clock.now += 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    clock.now += 60
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # idle time refills up to the burst, not beyond


def test_refilled_buckets_are_forgotten_so_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "PRUNE_ABOVE", 3)
    clock = Clock(now=100.0)
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    for identity in "abc":
        buckets.take(identity)
    clock.now += 0.5  # a, b and c still lack half a token: nothing to forget
    buckets.take("d")
    buckets.take("d")
    assert len(buckets._buckets) == 4
    clock.now += 1  # a, b and c are full again; d still lacks a token
    buckets.take("e")
    assert sorted(buckets._buckets) == ["d", "e"]


def _key(settings: Settings, owner: str) -> dict[str, str]:
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        key = auth.create_key(session, owner, "write")[1]
    engine.dispose()
    return {"Authorization": f"Bearer {key}"}


def _is_refused(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "code"} and body["code"] == code, body
    for word in words:
        assert word in body["error"], body


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    """Auth on, a burst of 3 requests, then one every 100 s (none comes back during a test)."""
    secure = settings.model_copy(update={"auth": "on", "rate_limit_per_s": 0.01, "rate_limit_burst": 3})
    with TestClient(create_app(secure)) as client:
        yield client


def test_over_its_rate_a_key_gets_429_with_retry_after(limited: TestClient, settings: Settings) -> None:
    alice, bob = _key(settings, "alice"), _key(settings, "bob")
    assert [limited.get("/v1/models", headers=alice).status_code for _ in range(3)] == [200] * 3
    refused = limited.get("/v1/models", headers=alice)
    _is_refused(refused, 429, "rate_limited", "WARMZOO_RATE_LIMIT_PER_S")
    assert refused.headers["retry-after"] == "100"
    _is_refused(limited.post("/v2/models/x/infer", json={}, headers=alice), 429, "rate_limited")  # every route
    assert limited.get("/v1/models", headers=bob).status_code == 200  # another key has its own bucket
    assert limited.get("/healthz").status_code == 200  # probes are not limited


def test_anonymous_clients_are_limited_by_address(limited: TestClient) -> None:
    assert [limited.get("/v1/jobs").status_code for _ in range(3)] == [200] * 3
    refused = limited.get("/v1/jobs")
    _is_refused(refused, 429, "rate_limited", "client testclient")
    assert int(refused.headers["retry-after"]) >= 1


def test_a_key_has_at_most_its_quota_of_active_jobs(settings: Settings) -> None:
    capped = settings.model_copy(update={"auth": "on", "max_active_jobs_per_key": 2})
    alice, bob = _key(settings, "alice"), _key(settings, "bob")
    with TestClient(create_app(capped)) as api:
        files = {"weights": ("w.safetensors", tiny_weights())}
        assert api.post("/v1/models/a/versions", files=files, data={"spec": tiny_spec().model_dump_json()},
                        headers=alice).status_code == 201  # fmt: skip
        first = api.post("/v1/warmups", json=warmup("a"), headers={**alice, "Idempotency-Key": "one"}).json()
        assert api.post("/v1/warmups", json=warmup("b"), headers=alice).status_code == 202
        third = api.post("/v1/warmups", json=warmup("c"), headers=alice)
        _is_refused(third, 429, "too_many_active_jobs", "WARMZOO_MAX_ACTIVE_JOBS_PER_KEY", "2 jobs")
        _is_refused(api.post("/v1/models/a/versions/1/export", headers=alice), 429, "too_many_active_jobs")
        replay = api.post("/v1/warmups", json=warmup("a"), headers={**alice, "Idempotency-Key": "one"})
        assert replay.status_code == 202 and replay.json()["id"] == first["id"]  # a replay queues nothing
        assert api.post("/v1/warmups", json=warmup("c"), headers=bob).status_code == 202
        assert api.post(f"/v1/jobs/{first['id']}/cancel", headers=alice).status_code == 200
        assert api.post("/v1/warmups", json=warmup("c"), headers=alice).status_code == 202  # a slot is free again
        assert api.get("/v1/jobs").json()["total"] == 4


def test_json_bodies_have_their_own_smaller_limit(settings: Settings) -> None:
    small = settings.model_copy(update={"max_json_bytes": 2000})
    with TestClient(create_app(small)) as api:
        padded = warmup("big", data={"task": "copy_first_input", "seq_length": 12, "num_samples": 16, "x": "y" * 2000})
        _is_refused(api.post("/v1/warmups", json=padded), 413, "content_too_large", "2000", "WARMZOO_MAX_JSON_BYTES")
        chunks = iter([b'{"inputs": [', b" " * 1500, b" " * 1500, b"]}"])  # no Content-Length: cut while read
        answer = api.post("/v2/models/x/infer", content=chunks, headers={"content-type": "application/json"})
        _is_refused(answer, 413, "content_too_large", "WARMZOO_MAX_JSON_BYTES")
        assert api.get("/v1/jobs").json()["total"] == 0
        spec = tiny_spec(hidden_size=16)
        weights = tiny_weights(spec)
        assert len(weights) > 2000  # a multipart upload of this size is under max_upload_bytes: accepted
        files = {"weights": ("w.safetensors", weights)}
        uploaded = api.post("/v1/models/up/versions", data={"spec": spec.model_dump_json()}, files=files)
        assert uploaded.status_code == 201, uploaded.text


CAPS = {"max_hidden_size": 8, "max_layers": 2, "max_input_size": 2, "max_output_size": 2, "max_warmup_steps": 5,
        "max_seq_length": 50, "max_num_samples": 40, "max_batch_time": 6}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "setting"),
    [
        ({"spec": {"cell": "gru", "input_size": 1, "hidden_size": 9}}, "spec.hidden_size", "max_hidden_size"),
        ({"spec": {"cell": "gru", "input_size": 1, "hidden_size": 4, "num_layers": 3}}, "spec.num_layers",
         "max_layers"),
        ({"spec": {"cell": "gru", "input_size": 3, "hidden_size": 4}}, "spec.input_size", "max_input_size"),
        ({"spec": {"cell": "gru", "input_size": 1, "hidden_size": 4, "output_size": 3}}, "spec.output_size",
         "max_output_size"),
        ({"warmup": {"steps": 6}}, "warmup.steps", "max_warmup_steps"),
        ({"data": {"task": "copy_first_input", "seq_length": 51, "num_samples": 16}}, "data.seq_length",
         "max_seq_length"),
        ({"data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 41}}, "data.num_samples",
         "max_num_samples"),
    ],
)  # fmt: skip
def test_every_warmup_cap_is_named_and_costs_nothing(
    settings: Settings, change: dict[str, Any], field: str, setting: str
) -> None:
    with TestClient(create_app(settings.model_copy(update=CAPS))) as api:
        answer = api.post("/v1/warmups", json=warmup("capped", **change))
        _is_refused(answer, 422, "limit_exceeded", f"WARMZOO_{setting.upper()}", str(CAPS[setting]))
        assert answer.json()["field"] == field
        assert api.get("/v1/jobs").json()["total"] == 0


def test_data_set_and_inference_caps_are_named(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update=CAPS))) as api:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((41, 5, 1), np.float32))
        answer = api.post("/v1/datasets", files={"file": ("d.npy", buffer.getvalue())})
        _is_refused(answer, 422, "limit_exceeded", "WARMZOO_MAX_NUM_SAMPLES")
        spec = tiny_spec()
        files = {"weights": ("w.safetensors", tiny_weights(spec))}
        assert api.post("/v1/models/m/versions", data={"spec": spec.model_dump_json()}, files=files).status_code == 201
        x = {"inputs": [{"name": "input", "shape": [1, 7, 2], "datatype": "FP32", "data": [0.0] * 14}]}
        _is_refused(api.post("/v2/models/m/infer", json=x), 400, "invalid_input", "WARMZOO_MAX_BATCH_TIME")


@pytest.mark.parametrize("submissions", [30, 60])
def test_the_job_cap_holds_under_concurrent_submissions(settings: Settings, submissions: int) -> None:
    """The count and the insert are one transaction under a lock on the key's row: before, 30
    concurrent submissions with one key (cap 8) were all accepted, and 60 gave 37 jobs."""
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    with sessions() as session:
        row, _ = auth.create_key(session, "alice", "write")
    alice = auth.Principal(owner="alice", scope="write", key_id=row.id)
    export = NewJob("export", {"model": "m", "version": 1, "files": ["model.onnx"]}, 1)
    outcomes: list[str] = []

    def submit(_: int) -> None:
        with sessions() as session:
            try:
                lifecycle.submit(session, export, settings, by=alice)
                outcomes.append("accepted")
            except WarmzooError as exc:
                outcomes.append(exc.code)

    run_in_threads(submit, submissions)
    engine.dispose()
    assert Counter(outcomes) == {"accepted": settings.max_active_jobs_per_key,
                                 "too_many_active_jobs": submissions - settings.max_active_jobs_per_key}  # fmt: skip
