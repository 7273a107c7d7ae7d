"""Open Inference Protocol v2 REST endpoints: HTTP in, `InferenceService` calls, OIP JSON out.

Handlers stay thin (KServe's `rest/v2_endpoints.py` over `dataplane.py`): everything
a request means is decided by `serving.dataplane`. The `/versions/{version}` part is
optional everywhere; without it the model's `latest` version answers (and a sequence
stays on the version it started on).

Bodies are read as Triton reads them: JSON whatever the Content-Type (tritonclient sends
none), and with `Inference-Header-Content-Length` only that many leading bytes are JSON, the
rest binary tensor data (`OipRoute`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope

from warmzoo.service.api.deps import CallerDep, RegistryDep
from warmzoo.service.api.errors import error_responses
from warmzoo.service.api.routing import GuardedRoute
from warmzoo.service.serving.dataplane import EXTENSIONS, InferenceService
from warmzoo.service.serving.oip import (
    BINARY_HEADER,
    INFER_EXAMPLES,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ModelStatistics,
    RepositoryIndexEntry,
    RepositoryIndexRequest,
    ServerLive,
    ServerMetadata,
    ServerReady,
    binary_inputs,
    encode_response,
)


class OipRequest(Request):
    """A /v2 request whose body is JSON whatever its Content-Type, followed by binary tensor data
    when `Inference-Header-Content-Length` gives the length of the JSON part."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        headers = [(key, value) for key, value in scope["headers"] if key != b"content-type"]
        super().__init__({**scope, "headers": [*headers, (b"content-type", b"application/json")]}, receive)
        self.binary = b""

    async def body(self) -> bytes:
        whole = await super().body()
        declared = self.headers.get(BINARY_HEADER)
        if declared is None:
            return whole
        if not declared.isdigit() or int(declared) > len(whole):
            # an HTTPException, so that FastAPI's body parsing lets it through to the JSON error handler
            raise HTTPException(400, f"{BINARY_HEADER} is {declared!r}, not a length within the {len(whole)}-byte body")
        self.binary = whole[int(declared) :]
        return whole[: int(declared)]


class OipRoute(GuardedRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oip_handler(request: Request) -> Response:
            return await handler(OipRequest(request.scope, request.receive))

        return oip_handler


TAGS: list[str | Enum] = ["inference (Open Inference Protocol v2)"]
health = APIRouter(prefix="/v2", tags=TAGS)  # probes: open to all, whatever the auth settings
router = APIRouter(prefix="/v2", tags=TAGS, route_class=OipRoute)


async def _inference(request: Request) -> InferenceService:
    return request.app.state.inference


Inference = Annotated[InferenceService, Depends(_inference)]
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": f"JSON; with binary outputs asked for, the JSON ({BINARY_HEADER} bytes) then their data.",
    },
    **error_responses(400, 404, 422, 429, 503),
}
InferBody = Annotated[InferenceRequest, Body(openapi_examples=INFER_EXAMPLES)]


@health.get("/health/live")
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@health.get("/health/ready")
async def server_ready() -> ServerReady:
    return ServerReady(ready=True)


@router.get("")
async def server_metadata(request: Request) -> ServerMetadata:
    """The server and the protocol extensions it speaks."""
    return ServerMetadata(name="warmzoo", version=request.app.version, extensions=list(EXTENSIONS))


@router.get("/models/stats")
def server_statistics(inference: Inference) -> ModelStatistics:
    """Triton's statistics extension: counts and cumulative durations of every version this
    server process has served (each API process counts its own)."""
    return ModelStatistics(model_stats=inference.statistics(None, None))


@router.get("/models/{name}/stats", responses=error_responses(404))
def model_statistics(inference: Inference, name: str) -> ModelStatistics:
    return ModelStatistics(model_stats=inference.statistics(name, None))


@router.get("/models/{name}/versions/{version}/stats", responses=error_responses(404))
def model_version_statistics(inference: Inference, name: str, version: str) -> ModelStatistics:
    return ModelStatistics(model_stats=inference.statistics(name, version))


@router.get("/models/{name}/config", responses=error_responses(404, 503))
def model_config(inference: Inference, name: str) -> dict[str, Any]:
    """Triton's model configuration extension (JSON), of the `latest` version."""
    return inference.config(name, None)


@router.get("/models/{name}/versions/{version}/config", responses=error_responses(404, 503))
def model_version_config(inference: Inference, name: str, version: str) -> dict[str, Any]:
    """Triton's model configuration extension (JSON)."""
    return inference.config(name, version)


@router.post("/repository/index")
def repository_index(
    inference: Inference, registry: RegistryDep, body: Annotated[RepositoryIndexRequest | None, Body()] = None
) -> list[RepositoryIndexEntry]:
    """Triton's model repository extension: every version in the zoo, READY once its session is
    loaded (any version loads on its first request); `ready: true` lists only those."""
    return inference.repository_index(registry.version_numbers(), ready_only=body is not None and body.ready)


@router.get("/models/{name}", responses=error_responses(404, 503))
def model_metadata(inference: Inference, name: str) -> ModelMetadata:
    return inference.metadata(name, None)


@router.get("/models/{name}/versions/{version}", responses=error_responses(404, 503))
def model_version_metadata(inference: Inference, name: str, version: str) -> ModelMetadata:
    return inference.metadata(name, version)


@router.get("/models/{name}/ready", responses=error_responses(404, 503))
def model_ready(inference: Inference, name: str) -> ModelReady:
    return inference.ready(name, None)


@router.get("/models/{name}/versions/{version}/ready", responses=error_responses(404, 503))
def model_version_ready(inference: Inference, name: str, version: str) -> ModelReady:
    return inference.ready(name, version)


@router.post("/models/{name}/infer", response_model=InferenceResponse, responses=INFER_RESPONSES)
async def model_infer(request: Request, inference: Inference, caller: CallerDep, name: str, body: InferBody) -> Response:
    """Run one request on the `latest` version; `parameters.sequence_id/start/end` stream a sequence
    (it belongs to the API key, or client address, that started it)."""
    return await _infer(request, inference, caller, name, None, body)


@router.post(
    "/models/{name}/versions/{version}/infer", response_model=InferenceResponse, responses=INFER_RESPONSES
)
async def model_version_infer(
    request: Request, inference: Inference, caller: CallerDep, name: str, version: str, body: InferBody
) -> Response:
    """Run one request on this version; `parameters.sequence_id/start/end` stream a sequence
    (it belongs to the API key, or client address, that started it)."""
    return await _infer(request, inference, caller, name, version, body)


async def _infer(
    request: Request, inference: InferenceService, caller: str, name: str, version: str | None, body: InferenceRequest
) -> Response:
    """JSON in and out, or with binary tensors after the JSON, as the request chose."""
    assert isinstance(request, OipRequest)  # the router's route_class
    raw = binary_inputs(body, request.binary)
    result = await inference.infer_async(name, version, body, raw, caller)
    content, header_length = encode_response(result, body)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={BINARY_HEADER: str(header_length)})
