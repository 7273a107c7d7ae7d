"""Prometheus metrics and the access log, for one app.

`Telemetry` owns a `CollectorRegistry` per app (several apps live in one test process, and
the global registry would refuse their second set of metrics). `TelemetryMiddleware` is
the one place that sees every request: it assigns the request id, times the request, and
records it under its route *template* (`/v1/models/{name}`, never the raw path, so that
the number of series stays bounded), then writes the access log line. Job counts, queue
depth and open sequences are read when Prometheus scrapes, from the jobs table and the
inference service, so every API replica reports the same source of truth.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sized
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import replace_params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warmzoo.service.api.job_schemas import JobStatus
from warmzoo.service.core.logs import request_id, valid_request_id
from warmzoo.service.jobs import lifecycle
from warmzoo.service.jobs.requests import JobKind

if TYPE_CHECKING:
    from warmzoo.service.serving.dataplane import InferenceService

__all__ = ["CONTENT_TYPE_LATEST", "REQUEST_ID_HEADER", "Telemetry", "TelemetryMiddleware"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("warmzoo.access")

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "(unmatched)"  # the route label of a request no route matched (404s on made-up paths)
UNKNOWN_MODEL = "(unknown)"  # the model label of a failed inference on a name this server never loaded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INFER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFER_ROUTES = frozenset({"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"})


class Telemetry:
    """The metrics of one app; `inference` and `sessions` are bound at start-up (lifespan)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "warmzoo_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "warmzoo_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte, by method and route template.",
            ("method", "route"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.inference_requests = Counter(
            "warmzoo_inference_requests",
            "Open Inference Protocol infer requests (HTTP and gRPC), by model name and HTTP status code.",
            ("model", "status"),
            registry=self.registry,
        )
        self.inference_duration = Histogram(
            "warmzoo_inference_request_duration_seconds",
            "Time to answer an infer request (session load, checks and the ONNX Runtime run), by model.",
            ("model",),
            buckets=INFER_BUCKETS,
            registry=self.registry,
        )
        self.grpc_requests = Counter(
            "warmzoo_grpc_requests",
            "gRPC calls answered, by method and status code (OK, INVALID_ARGUMENT, ...).",
            ("method", "code"),
            registry=self.registry,
        )
        self.grpc_duration = Histogram(
            "warmzoo_grpc_request_duration_seconds",
            "Time to answer a gRPC call, by method.",
            ("method",),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.state = _StateCollector()
        self.in_flight = 0  # HTTP requests this process is answering (TelemetryMiddleware counts them)
        # Several API processes (`serve` with api_processes > 1) write their counts to files in
        # this directory, all summed at a scrape; the process metrics would be one process's.
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry.register(self.state)
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def bind(self, sessions: sessionmaker[Session], inference: InferenceService) -> None:
        self.state.sessions, self.state.inference = sessions, inference

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (served with CONTENT_TYPE_LATEST)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)
        registry.register(self.state)
        return generate_latest(registry)

    def observe(self, method: str, route: str, status: int, seconds: float, scope: Scope) -> None:
        method = method if method in METHODS else "OTHER"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)
        if route in INFER_ROUTES and method == "POST":
            self._observe_inference(scope.get("path_params", {}).get("name", ""), status, seconds)

    def observe_grpc(self, method: str, code: str, seconds: float, model: str | None, status: int) -> None:
        """A gRPC call; ModelInfer (`model` set) also counts as an infer request, under the HTTP
        `status` its outcome has over HTTP, so the inference metrics cover both protocols."""
        self.grpc_requests.labels(method, code).inc()
        self.grpc_duration.labels(method).observe(seconds)
        if model is not None:
            self._observe_inference(model, status, seconds)

    def _observe_inference(self, name: str, status: int, seconds: float) -> None:
        model = self._model_label(name, status)
        self.inference_requests.labels(model, str(status)).inc()
        self.inference_duration.labels(model).observe(seconds)

    def _model_label(self, name: str, status: int) -> str:
        """The model name when it names a model this server has run (so made-up names in failed
        requests cannot grow the series without bound), else UNKNOWN_MODEL."""
        if status < 400:
            return name
        inference = self.state.inference
        loaded = {model for model, _ in inference.cached_sessions()} if inference is not None else set()
        return name if name in loaded else UNKNOWN_MODEL


class _StateCollector(Collector):
    """Gauges read at scrape time: jobs by status and kind, queue depth and age, open sequences."""

    def __init__(self) -> None:
        self.sessions: sessionmaker[Session] | None = None
        self.inference: InferenceService | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # the families are only known at collect time; nothing to check in advance

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.sessions is not None:
            yield from self._jobs(self.sessions)
        if self.inference is not None:
            yield from self._inference(self.inference)

    def _jobs(self, sessions: sessionmaker[Session]) -> Iterator[GaugeMetricFamily]:
        try:
            with sessions() as session:
                counts = lifecycle.counts(session)
                oldest = lifecycle.oldest_queued_at(session)
        except SQLAlchemyError:  # a scrape must still answer (with the HTTP metrics) when the database is down
            log.warning("cannot read the jobs table for /metrics", exc_info=True)
            return
        by_status = GaugeMetricFamily(
            "warmzoo_jobs", "Jobs in the jobs table, by status and kind.", labels=("status", "kind")
        )
        for status in get_args(JobStatus):
            for kind in get_args(JobKind):
                by_status.add_metric((status, kind), counts.get((status, kind), 0))
        yield by_status
        yield GaugeMetricFamily(
            "warmzoo_job_queue_depth",
            "Jobs waiting for a worker (status queued).",
            value=sum(n for (status, _), n in counts.items() if status == "queued"),
        )
        waited = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "warmzoo_job_queue_oldest_seconds",
            "How long the oldest queued job has waited (0 for an empty queue).",
            value=max(0.0, waited),
        )

    def _inference(self, inference: InferenceService) -> Iterator[GaugeMetricFamily]:
        store = inference.sequences  # a shared store (Redis) need not count its entries: NaN then
        open_sequences = float(len(store)) if isinstance(store, Sized) else float("nan")
        yield GaugeMetricFamily(
            "warmzoo_inference_open_sequences",
            "Streaming sequences whose state this server holds (started, not ended, not expired).",
            value=open_sequences,
        )
        yield GaugeMetricFamily(
            "warmzoo_inference_loaded_sessions",
            "ONNX Runtime sessions in memory (one per model version, LRU).",
            value=len(inference.cached_sessions()),
        )


class TelemetryMiddleware:
    """ASGI middleware: request id in and out, metrics and one access log line per request.

    Installed outermost, it also sees the answers of the other middlewares (a 413 from the
    body size limit) and requests that end in an unhandled exception (counted as 500).
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.telemetry = telemetry
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        self.telemetry.in_flight += 1
        rid = valid_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id.set(rid)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The 500 is sent after this, by Starlette's outermost middleware: leave the id set
            # (the request's task ends with it) so that its error log and response carry it.
            token = None
            raise
        finally:
            self.telemetry.in_flight -= 1
            seconds = self.clock() - started
            route = _route_template(scope)
            self.telemetry.observe(scope["method"], route, status, seconds, scope)
            _access(scope, route, status, seconds, rid)
            if token is not None:
                request_id.reset(token)


def _route_template(scope: Scope) -> str:
    """The path template of the route that took the request (or refused its method), e.g.
    `/v1/models/{name}`, whatever the version of FastAPI.

    Depending on its version, FastAPI leaves the route in `scope["route"]` with the prefix of
    `include_router` in its template or without it; in the second case the prefix is what the
    path has before the route's own template filled in with the request's path parameters.
    """
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    if not template:
        return UNMATCHED
    try:
        own, _ = replace_params(template, route.param_convertors, dict(scope.get("path_params", {})))
    except (AttributeError, KeyError, TypeError, ValueError, AssertionError):
        return template
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    if path != own and path.endswith(own):
        return path[: -len(own)] + template
    return template


def _access(scope: Scope, route: str, status: int, seconds: float, rid: str) -> None:
    duration_ms = round(seconds * 1000, 3)
    client = scope.get("client")
    level = logging.ERROR if status >= 500 else logging.INFO
    access_log.log(
        level,
        "%s %s %d %.1f ms",
        scope["method"],
        scope["path"],
        status,
        duration_ms,
        extra={
            "event": "http.request",
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": duration_ms,
            "request_id": rid,
            "client": f"{client[0]}:{client[1]}" if client else None,
        },
    )
