"""The FastAPI application: settings in, migrations applied at start, routers mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from warmzoo.service.api import routes
from warmzoo.service.api.deps import SessionDep, rate_limit, reader, writer
from warmzoo.service.api.errors import error_responses, install_error_handlers
from warmzoo.service.api.grpc.service import start_server as start_grpc_server
from warmzoo.service.api.metrics import CONTENT_TYPE_LATEST, Telemetry, TelemetryMiddleware
from warmzoo.service.api.middleware import BodySizeLimit, SecurityHeaders
from warmzoo.service.api.routing import dependency_calls
from warmzoo.service.api.ui.docs import router as docs_router
from warmzoo.service.api.ui.router import router as ui_router
from warmzoo.service.core.config import Settings, get_settings
from warmzoo.service.core.gc_pauses import freeze_long_lived
from warmzoo.service.core.logs import configure_logging
from warmzoo.service.jobs.watch import JobWatch
from warmzoo.service.registry.blobs import open_blob_store
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.security.auth import auth_enabled
from warmzoo.service.security.ratelimit import TokenBuckets
from warmzoo.service.serving.dataplane import InferenceService
from warmzoo.service.serving.repository import registry_resolver
from warmzoo.service.serving.sequences import open_sequence_store

EVENTS_POLL_S = 0.25  # how often the job of open event streams is read
GRPC_GRACE_S = 5.0  # calls in progress at shutdown get this long to finish
GUARD_ERRORS = error_responses(401, 403, 429, 503)  # any API route: key, scope, rate, database down
DESCRIPTION = """A zoo of warmed-up (multistable) recurrent-network initialisations.

Writes (jobs, uploads, aliases, tags) need an API key, sent as `Authorization: Bearer <key>`;
reads and inference may be anonymous (server setting). Over their rate, clients get a 429
with `Retry-After`.

Every error body is `{"error": message, "field": dotted.path | null, "code": slug}`.
Every response carries an `X-Request-ID` header (the client's, or a new one), also found in
the server's log lines; Prometheus metrics are at `/metrics`."""


def _package_version() -> str:
    try:
        return version("warmzoo")
    except PackageNotFoundError:
        return "0+unknown"


def process_app() -> FastAPI:
    """The app of one of several API processes (`warmzoo serve` with api_processes > 1, whose
    uvicorn calls this in each process it starts): settings from the environment that
    `serve` prepared, the same JSON logs."""
    settings = get_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    freeze_long_lived()
    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app bound to `settings` (default: from the environment); start-up applies migrations."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade_database, settings)
        engine = make_engine(settings.database_url, settings.database_pool_timeout_s)
        app.state.sessions = session_factory(engine)
        app.state.job_watch = JobWatch(app.state.sessions, EVENTS_POLL_S)
        app.state.blobs = open_blob_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url)
        sequence_store = await run_in_threadpool(open_sequence_store, settings)
        app.state.inference = InferenceService(
            registry_resolver(app.state.sessions, app.state.blobs, settings.data_dir / "onnx-cache"),
            session_cache_size=settings.session_cache_size,
            intra_op_threads=settings.onnx_threads,
            sequence_store=sequence_store,
            max_batch_time=settings.max_batch_time,
            max_inference_bytes=settings.max_inference_bytes,
            batching=settings.batching_for,
        )
        app.state.telemetry.bind(app.state.sessions, app.state.inference)
        grpc_server = None
        if settings.grpc_address:
            reuse_port = settings.api_processes > 1  # the processes of one `serve` share the port
            grpc_server = await start_grpc_server(app.state, app.version, settings.grpc_address, reuse_port=reuse_port)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(GRPC_GRACE_S)
            app.state.inference.close()
            engine.dispose()
            close = getattr(sequence_store, "close", None)
            if close is not None:
                close()

    app = FastAPI(
        title="warmzoo",
        version=_package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by ui.docs, from the installed package rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.telemetry = Telemetry()  # per app: tests create many apps in one process
    app.state.rate_limits = (
        TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst) if settings.rate_limit_per_s else None
    )
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit, max_upload_bytes=settings.max_upload_bytes, max_json_bytes=settings.max_json_bytes
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TelemetryMiddleware, telemetry=app.state.telemetry)  # added last: outermost
    # every API route reads at least (writes ask for more), and counts against its caller's rate
    guarded = [Depends(reader), Depends(rate_limit)]
    # Routes are matched in order: inference, the hot path, first.
    v1 = (routes.models.router, routes.warmups.router, routes.jobs.router, routes.datasets.router)
    api = [(routes.inference.router, ""), *[(router, "/v1") for router in v1]]
    for router, prefix in api:
        app.include_router(router, prefix=prefix, dependencies=guarded, responses=GUARD_ERRORS)
    app.include_router(routes.inference.health)  # load balancers and orchestrators probe without a key
    app.include_router(ui_router)  # `/` and /ui/static only: never shadows the API
    app.include_router(docs_router)

    @app.get("/healthz", tags=["health"], responses=error_responses(500))
    def healthz(session: SessionDep) -> dict[str, str]:
        """Alive and able to reach the registry database."""
        session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
    )
    def metrics() -> Response:
        """Prometheus metrics: HTTP and inference requests and latencies, jobs by status and kind,
        queue depth, open streaming sequences (the job and sequence figures are read at scrape time)."""
        return Response(app.state.telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)

    _document_optional_keys(app, settings, api)
    return app


def _document_optional_keys(app: FastAPI, settings: Settings, api: list[tuple[APIRouter, str]]) -> None:
    """State in the OpenAPI document what FastAPI cannot: the page-size limit (a setting) and
    uploads as binary. And mark the operations a client may call without a key (all of them with auth off; the
    reads and inference with anonymous reads on) as such in the OpenAPI document: FastAPI
    lists the bearer scheme as required wherever it is declared, which told clients and
    generated SDKs that every read needs a key. OpenAPI's optional security is an empty
    requirement beside the scheme."""
    default = app.openapi
    optional = {
        (prefix + route.path_format, method.lower())
        for router, prefix in api
        for route in router.routes
        if isinstance(route, APIRoute)
        and (not auth_enabled(settings) or (settings.anonymous_read and not _writes(route)))
        for method in route.methods
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path, operations in default()["paths"].items():
                for method, operation in operations.items():
                    if (path, method) in optional and operation.get("security"):
                        operation["security"] = [{}, *operation["security"]]
                    _state_limits(operation, settings)
            for body in app.openapi_schema["components"]["schemas"].values():  # type: ignore[index]
                for field in body.get("properties", {}).values():
                    if field.get("contentMediaType") == "application/octet-stream":
                        field["format"] = "binary"  # an uploaded file: bytes, not text (OpenAPI 3.0's word for it)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _state_limits(operation: dict[str, Any], settings: Settings) -> None:
    """Limits that are settings, not constants, written into the document as they stand."""
    for parameter in operation.get("parameters", []):
        if (parameter["in"], parameter["name"]) == ("query", "limit"):
            parameter["schema"]["maximum"] = settings.max_page_size


def _writes(route: APIRoute) -> bool:
    """Whether the route asks for a write key (`writer` anywhere among its dependencies)."""
    return writer in dependency_calls(route.dependant)
