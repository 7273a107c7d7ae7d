"""Operability: Prometheus metrics, request ids, JSON logs (access and job lifecycle), and an
OpenAPI page whose every request body comes with an example that the API accepts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.payloads import warmup
from warmzoo.service.api.app import create_app
from warmzoo.service.api.metrics import UNKNOWN_MODEL, UNMATCHED, Telemetry, TelemetryMiddleware
from warmzoo.service.core.config import Settings
from warmzoo.service.core.logs import JsonFormatter, configure_logging, request_id
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import WarmupIn, check_warmup
from warmzoo.service.jobs.worker import Worker
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def infer_body(steps: int, **parameters: Any) -> dict[str, Any]:
    """A request for tiny_spec() (input_size 2)."""
    data = [[[0.1 * t, -0.2 * t] for t in range(steps)]]
    body: dict[str, Any] = {"inputs": [{"name": "input", "shape": [1, steps, 2], "datatype": "FP32", "data": data}]}
    if parameters:
        body["parameters"] = parameters
    return body


WARMUP = warmup("queued", steps=3)


# -- /metrics ---------------------------------------------------------------------------------


def test_http_requests_are_counted_by_route_template_not_path(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        assert client.get(f"/v1/models/{name}").status_code == 404
    client.get("/no/such/path")
    client.post("/healthz")
    samples = scrape(client)
    assert value(samples, "warmzoo_http_requests_total", method="GET", route="/v1/models/{name}", status="404") == 3
    assert value(samples, "warmzoo_http_requests_total", method="GET", route=UNMATCHED, status="404") == 1
    assert value(samples, "warmzoo_http_requests_total", method="POST", route="/healthz", status="405") == 1
    count = value(samples, "warmzoo_http_request_duration_seconds_count", method="GET", route="/v1/models/{name}")
    assert count == 3
    assert not any("/v1/models/a" in str(labels) for _, labels in samples)


def test_inference_is_counted_per_model_and_made_up_names_share_one_label(
    client: TestClient, upload: Callable[..., Response]
) -> None:
    assert upload("tiny").status_code == 201
    assert client.post("/v2/models/tiny/versions/1/infer", json=infer_body(3)).status_code == 200
    assert client.post("/v2/models/tiny/infer", json=infer_body(2)).status_code == 200
    bad_shape = {"inputs": [{"name": "input", "shape": [1, 1, 5], "datatype": "FP32", "data": [0.0] * 5}]}
    assert client.post("/v2/models/tiny/infer", json=bad_shape).status_code == 400
    for name in ("nope-1", "nope-2"):
        assert client.post(f"/v2/models/{name}/infer", json=infer_body(1)).status_code == 404
    samples = scrape(client)
    assert value(samples, "warmzoo_inference_requests_total", model="tiny", status="200") == 2
    assert value(samples, "warmzoo_inference_requests_total", model="tiny", status="400") == 1
    assert value(samples, "warmzoo_inference_requests_total", model=UNKNOWN_MODEL, status="404") == 2
    assert value(samples, "warmzoo_inference_request_duration_seconds_count", model="tiny") == 3
    assert value(samples, "warmzoo_inference_loaded_sessions") == 1


def test_open_sequences_are_read_at_scrape_time(client: TestClient, upload: Callable[..., Response]) -> None:
    upload("tiny")
    url = "/v2/models/tiny/infer"
    assert client.post(url, json=infer_body(1, sequence_id=5, sequence_start=True)).status_code == 200
    assert value(scrape(client), "warmzoo_inference_open_sequences") == 1
    assert client.post(url, json=infer_body(1, sequence_id=5, sequence_end=True)).status_code == 200
    assert value(scrape(client), "warmzoo_inference_open_sequences") == 0


def test_job_counts_and_queue_depth_come_from_the_jobs_table(client: TestClient) -> None:
    samples = scrape(client)
    assert value(samples, "warmzoo_jobs", status="queued", kind="warmup") == 0
    assert value(samples, "warmzoo_job_queue_depth") == 0
    ids = [client.post("/v1/warmups", json={**WARMUP, "seed": seed}).json()["id"] for seed in range(2)]
    samples = scrape(client)
    assert value(samples, "warmzoo_jobs", status="queued", kind="warmup") == 2
    assert value(samples, "warmzoo_job_queue_depth") == 2
    assert value(samples, "warmzoo_job_queue_oldest_seconds") >= 0
    assert client.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 200
    samples = scrape(client)
    assert value(samples, "warmzoo_jobs", status="canceled", kind="warmup") == 1
    assert value(samples, "warmzoo_job_queue_depth") == 1
    # every (status, kind) is reported, zeros included, so that dashboards see a series from the start
    assert ("warmzoo_jobs", frozenset({("status", "failed"), ("kind", "export")})) in samples


def test_each_app_has_its_own_metrics(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        first.get("/healthz")
        first.get("/healthz")
        second.get("/healthz")
        route = {"method": "GET", "route": "/healthz", "status": "200"}
        assert value(scrape(first), "warmzoo_http_requests_total", **route) == 2
        assert value(scrape(second), "warmzoo_http_requests_total", **route) == 1


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The service's JSON logging into a buffer, at debug; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("debug", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_unhandled_error_is_counted_and_logged_as_a_500(settings: Settings, json_log: io.StringIO) -> None:
    app = create_app(settings)

    @app.get("/boom/{thing}")
    def boom(thing: str) -> None:
        raise RuntimeError(thing)

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom/x", headers={"X-Request-ID": "trace-500"})
        assert answer.status_code == 500 and answer.json()["code"] == "internal"
        assert answer.headers["x-request-id"] == "trace-500" and "trace-500" in answer.json()["error"]
        assert value(scrape(client), "warmzoo_http_requests_total", method="GET", route="/boom/{thing}", status="500")
    logged = [line for line in lines(json_log) if line.get("request_id") == "trace-500"]
    (traceback,) = [line for line in logged if line["message"].startswith("unhandled error")]
    assert "RuntimeError: x" in traceback["exception"]  # the traceback names the request it broke
    (access,) = [line for line in logged if line.get("event") == "http.request"]
    assert (access["level"], access["status"], access["route"]) == ("error", 500, "/boom/{thing}")


def test_requests_in_flight_are_counted_until_they_end_even_in_error() -> None:
    """The inference routes read the count to decide whether a request may run on the event loop."""
    telemetry = Telemetry()
    release = asyncio.Event()
    seen = []

    async def inner(scope: dict, receive: Any, send: Any) -> None:
        seen.append(telemetry.in_flight)
        await release.wait()
        if scope["path"] == "/fails":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = TelemetryMiddleware(inner, telemetry)

    async def request(path: str) -> None:
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
        with contextlib.suppress(RuntimeError):
            await middleware(scope, None, lambda message: asyncio.sleep(0))

    async def two_at_once() -> None:
        both = asyncio.gather(request("/fine"), request("/fails"))
        while len(seen) < 2:
            await asyncio.sleep(0)
        assert telemetry.in_flight == 2
        release.set()
        await both

    asyncio.run(two_at_once())
    assert seen == [1, 2] and telemetry.in_flight == 0


# -- request ids and the access log ------------------------------------------------------------


def test_the_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = {client.get("/healthz").headers["x-request-id"] for _ in range(2)}
    assert len(generated) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated)
    replaced = client.get("/healthz", headers={"X-Request-ID": "x" * 201}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert client.get("/v1/models/none", headers={"X-Request-ID": "e"}).headers["x-request-id"] == "e"  # errors too


def test_one_access_log_record_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="warmzoo.access"):
        client.get("/v1/models/ghost", headers={"X-Request-ID": "req-1"})
    (record,) = [r for r in caplog.records if r.name == "warmzoo.access"]
    assert (record.event, record.method, record.route, record.path) == (
        "http.request",
        "GET",
        "/v1/models/{name}",
        "/v1/models/ghost",
    )
    assert record.status == 404 and record.request_id == "req-1" and record.duration_ms >= 0


def test_log_records_are_json_lines_with_extras_request_id_and_exceptions(json_log: io.StringIO) -> None:
    log = logging.getLogger("warmzoo.test")
    token = request_id.set("rid-9")
    try:
        log.debug("step %d", 3, extra={"event": "job.progress", "job_id": "j1", "path": object()})
    finally:
        request_id.reset(token)
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("it failed")
    first, second = lines(json_log)
    assert first["message"] == "step 3" and first["level"] == "debug" and first["logger"] == "warmzoo.test"
    assert (first["event"], first["job_id"], first["request_id"]) == ("job.progress", "j1", "rid-9")
    assert first["ts"].endswith("+00:00") and isinstance(first["path"], str)
    assert "request_id" not in second and "ValueError: bad" in second["exception"]


def test_the_log_level_setting_accepts_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMZOO_LOG_LEVEL", "DEBUG")
    assert Settings().log_level == "debug"
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


# -- job lifecycle log events -------------------------------------------------------------------


@pytest.fixture
def worker_settings(settings: Settings) -> Iterator[Settings]:
    quick = settings.model_copy(update={"vaa_steps": 20, "vaa_repeats": 1, "worker_poll_s": 0.05})
    upgrade_database(quick)
    yield quick


def test_the_worker_logs_job_lifecycle_events(worker_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(worker_settings.database_url)
    sessions, blobs = session_factory(engine), LocalBlobStore(worker_settings.blob_store)
    try:
        with sessions() as session:
            body = WarmupIn.model_validate({**WARMUP, "warmup": {"steps": 10, "batch_size": 8}})
            new = check_warmup(body, worker_settings, Registry(session, blobs))
            job_id = lifecycle.submit(session, new, worker_settings)[0].id
        with caplog.at_level(logging.DEBUG, logger="warmzoo.service.jobs.worker"):
            assert Worker(worker_settings, sessions, blobs).run_once()
    finally:
        engine.dispose()
    events = [(r.event, r.levelname) for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert events[0] == ("job.claimed", "INFO") and events[-1] == ("job.succeeded", "INFO"), events
    progress = [r for r in caplog.records if getattr(r, "event", None) == "job.progress"]
    assert progress and all(r.levelname == "DEBUG" and r.kind == "warmup" for r in progress)
    assert [r.step for r in progress if r.total == 10][-1] == 10


# -- OpenAPI --------------------------------------------------------------------------------------


PATH_VALUES = {"name": "example", "version": "1", "alias": "prod"}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _schema_examples(spec: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """The examples a (possibly optional, `anyOf [model, null]`) body schema carries."""
    schema = _resolve(spec, schema)
    found = list(schema.get("examples", [])) + ([schema["example"]] if "example" in schema else [])
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        if branch.get("type") != "null":
            found += _schema_examples(spec, branch)
    return found


def _request_bodies(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for content_type, media in operation.get("requestBody", {}).get("content", {}).items():
                yield method.upper(), path, content_type, media


def test_every_request_body_has_an_example_that_the_api_accepts(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    missing, refused, checked = [], [], 0
    for method, path, content_type, media in _request_bodies(spec):
        where = f"{method} {path} ({content_type})"
        if content_type == "application/json":
            examples = [e["value"] for e in media.get("examples", {}).values()]
            examples += [media["example"]] if "example" in media else []
            examples += _schema_examples(spec, media["schema"])
            if not examples:
                missing.append(where)
            url = path.format(**PATH_VALUES)
            for example in examples:
                answer = client.request(method, url, json=example)
                checked += 1
                if answer.status_code == 422 or answer.status_code >= 500:  # a 404 for the made-up model is fine
                    refused.append(f"{where}: {example} -> {answer.status_code} {answer.text}")
        else:  # a form: every field but the uploaded file shows an example
            form = _resolve(spec, media["schema"])
            for field, schema in form["properties"].items():
                is_file = schema.get("format") == "binary" or schema.get("contentMediaType")
                if not is_file and not _schema_examples(spec, schema):
                    missing.append(f"{where} field {field}")
    assert not missing, f"request bodies without an example: {missing}"
    assert not refused, "examples the API refuses:\n" + "\n".join(refused)
    assert checked >= 10  # the walk did find the bodies


def test_the_infer_examples_include_a_whole_sequence_and_a_stream(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    bodies = [example["value"] for example in examples.values()]
    assert any("parameters" not in body and body["inputs"][0]["name"] == "input" for body in bodies)
    flags = [body.get("parameters", {}) for body in bodies]
    assert any(f.get("sequence_start") for f in flags) and any(f.get("sequence_end") for f in flags)
