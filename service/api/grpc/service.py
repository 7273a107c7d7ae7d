"""gRPC /v2: Triton's `inference.GRPCInferenceService` (a superset of KServe's grpc_predict_v2) on
grpcio's asyncio server, in the process and on the event loop of the HTTP app.

Each call goes where the HTTP route of the same name goes: the same `InferenceService` (one
inference code path, one set of limits), the same API-key check (`authorization: Bearer <key>`
metadata, anonymous reads as the server allows them) and rate limit, the same metrics. Domain
errors become the gRPC status of their reason (`api.errors.GRPC_STATUS`) with the message HTTP
sends; the calls Triton has and this server does not (shared memory, model load/unload, trace
and log settings, the streaming infer) answer UNIMPLEMENTED.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from warmzoo.service.api.deps import caller_identity, count_request, identify, may_read
from warmzoo.service.api.errors import GRPC_STATUS, HTTP_STATUS, as_domain_error, grpc_trailers
from warmzoo.service.api.grpc.protos import grpc_service_pb2 as pb
from warmzoo.service.api.grpc.protos import model_config_pb2
from warmzoo.service.api.grpc.protos.grpc_service_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from warmzoo.service.core.errors import Reason, WarmzooError, validation_error
from warmzoo.service.core.logs import request_id, valid_request_id
from warmzoo.service.registry.registry import Registry
from warmzoo.service.serving.dataplane import EXTENSIONS
from warmzoo.service.serving.oip import InferenceRequest, Parameters, RawInputs, RequestInput, RequestOutput

log = logging.getLogger(__name__)
access_log = logging.getLogger("warmzoo.access")

Reply = TypeVar("Reply", bound=Message)
Handler = Callable[["InferenceServicer", Any, str], Awaitable[Reply]]
"""A servicer method: (self, request, caller: whom quotas and sequences belong to) -> reply."""
Call = Callable[["InferenceServicer", Any, grpc.aio.ServicerContext], Awaitable[Reply]]


def _call(*, guarded: bool = True) -> Callable[[Handler[Reply]], Call[Reply]]:
    """Wrap a servicer method: key check and rate limit (unless a health probe), domain errors as
    gRPC statuses, metrics and the request id of the log lines."""

    def wrap(method: Handler[Reply]) -> Call[Reply]:
        @functools.wraps(method)
        async def call(self: InferenceServicer, request: Any, context: grpc.aio.ServicerContext) -> Reply:
            metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
            rid = valid_request_id(metadata.get("x-request-id"))
            token = request_id.set(rid)
            client = _client(metadata, context.peer())
            started = time.perf_counter()
            code, status = grpc.StatusCode.CANCELLED, 499  # unless it ends otherwise: the client left
            try:
                caller = f"client {client}"
                if guarded:
                    caller = await self.admit(metadata.get("authorization"), client)
                reply = await method(self, request, caller)
                code, status = grpc.StatusCode.OK, 200
                return reply
            except Exception as exc:
                error = _domain_error(exc)
                if error is None:
                    code, status = grpc.StatusCode.INTERNAL, 500
                    log.exception("unhandled error on gRPC %s", method.__name__)
                    await context.abort(code, f"internal error ({type(exc).__name__}); the server log has the details")
                code, status = GRPC_STATUS[error.reason], HTTP_STATUS[error.reason]
                await context.abort(code, error.message, trailing_metadata=grpc_trailers(error))
            finally:
                seconds = time.perf_counter() - started
                model = request.model_name if isinstance(request, pb.ModelInferRequest) else None
                self.state.telemetry.observe_grpc(method.__name__, code.name, seconds, model, status)
                _access(method.__name__, code, seconds, rid, client)
                request_id.reset(token)

        return call

    return wrap


def _domain_error(exc: Exception) -> WarmzooError | None:
    """What HTTP would answer with a 4xx or a 503, as a domain error; None for a bug."""
    if isinstance(exc, WarmzooError):
        return exc
    if isinstance(exc, ValidationError):  # a ModelInferRequest the OIP models refuse
        return validation_error(exc.errors())
    return as_domain_error(exc)


def _access(method: str, code: grpc.StatusCode, seconds: float, rid: str, client: str) -> None:
    """The access log line of a gRPC call, as TelemetryMiddleware writes one per HTTP request."""
    duration_ms = round(seconds * 1000, 3)
    level = logging.ERROR if code is grpc.StatusCode.INTERNAL else logging.INFO
    extra = {"event": "grpc.request", "method": method, "code": code.name, "duration_ms": duration_ms}
    extra.update(request_id=rid, client=client)
    access_log.log(level, "gRPC %s %s %.1f ms", method, code.name, duration_ms, extra=extra)


class InferenceServicer(GRPCInferenceServiceServicer):
    """The /v2 calls over gRPC, on the app's state (its inference service, settings, database)."""

    def __init__(self, state: State, version: str) -> None:
        self.state = state
        self.version = version

    async def admit(self, authorization: str | None, client: str) -> str:
        """What every /v2 route asks over HTTP: a principal that may read, within its rate; returns
        whom quotas and streaming sequences belong to (the key, or the client address)."""
        who = may_read(await identify(self.state, authorization), self.state.settings)
        caller = caller_identity(who, client)
        count_request(self.state, caller)
        return caller

    @_call(guarded=False)
    async def ServerLive(self, request: pb.ServerLiveRequest, caller: str) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_call(guarded=False)
    async def ServerReady(self, request: pb.ServerReadyRequest, caller: str) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    @_call()
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, caller: str) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="warmzoo", version=self.version, extensions=list(EXTENSIONS))

    @_call()
    async def ModelReady(self, request: pb.ModelReadyRequest, caller: str) -> pb.ModelReadyResponse:
        ready = await run_in_threadpool(self.state.inference.ready, request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready.ready)

    @_call()
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, caller: str) -> pb.ModelMetadataResponse:
        meta = await run_in_threadpool(self.state.inference.metadata, request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions or [],
            platform=meta.platform,
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t.model_dump()) for t in meta.inputs],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t.model_dump()) for t in meta.outputs],
        )

    @_call()
    async def ModelConfig(self, request: pb.ModelConfigRequest, caller: str) -> pb.ModelConfigResponse:
        """Triton's model configuration extension: the JSON HTTP serves, as its protobuf."""
        config = await run_in_threadpool(self.state.inference.config, request.name, request.version or None)
        return pb.ModelConfigResponse(config=json_format.ParseDict(_one_scheduler(config), model_config_pb2.ModelConfig()))

    @_call()
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, caller: str) -> pb.RepositoryIndexResponse:
        """Every version in the zoo (`repository_name` is ignored: the zoo is one repository)."""

        def index() -> list[Any]:
            with self.state.sessions() as session:
                versions = Registry(session, self.state.blobs).version_numbers()
            return self.state.inference.repository_index(versions, ready_only=request.ready)

        entries = await run_in_threadpool(index)
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**e.model_dump()) for e in entries])

    @_call()
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, caller: str) -> pb.ModelStatisticsResponse:
        """Triton's statistics extension: every version served (no name), a model's, or a version's."""
        name, version = request.name or None, request.version or None
        stats = await run_in_threadpool(self.state.inference.statistics, name, version)
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    @_call()
    async def ModelInfer(self, request: pb.ModelInferRequest, caller: str) -> pb.ModelInferResponse:
        return await self._infer(request, caller)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's streaming infer (tritonclient's start_stream / async_stream_infer): each request
        answered in order on the stream. A refused one gets the message HTTP would send in
        `error_message`, and the stream goes on. The key is checked when the stream opens (a
        refusal closes it with the status of a unary call); every request counts against the
        caller's rate."""
        metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        client = _client(metadata, context.peer())
        try:
            caller = await self.admit(metadata.get("authorization"), client)
        except Exception as exc:
            error = _domain_error(exc)
            if error is None:
                raise  # grpc answers UNKNOWN; the log has it
            await context.abort(GRPC_STATUS[error.reason], error.message, trailing_metadata=grpc_trailers(error))
        async for request in requests:
            rid = request.id or "-"
            started = time.perf_counter()
            code, status = grpc.StatusCode.OK, 200
            try:
                count_request(self.state, caller)
                reply = pb.ModelStreamInferResponse(infer_response=await self._infer(request, caller))
            except Exception as exc:
                error = _domain_error(exc)
                if error is None:
                    log.exception("unhandled error on gRPC ModelStreamInfer")
                    code, status = grpc.StatusCode.INTERNAL, 500
                    message = f"internal error ({type(exc).__name__}); the server log has the details"
                else:
                    code, status, message = GRPC_STATUS[error.reason], HTTP_STATUS[error.reason], error.message
                answer = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
                reply = pb.ModelStreamInferResponse(error_message=message, infer_response=answer)
            seconds = time.perf_counter() - started
            self.state.telemetry.observe_grpc("ModelStreamInfer", code.name, seconds, request.model_name, status)
            _access("ModelStreamInfer", code, seconds, rid, client)
            yield reply

    async def _infer(self, request: pb.ModelInferRequest, caller: str) -> pb.ModelInferResponse:
        body, raw = infer_request(request)
        version = request.model_version or None
        result = await self.state.inference.infer_async(request.model_name, version, body, raw, owner=caller)
        reply = pb.ModelInferResponse(model_name=result.model_name, model_version=result.model_version, id=result.id)
        for name, array in result.outputs.items():
            reply.outputs.add(name=name, datatype="FP32", shape=array.shape)
            reply.raw_output_contents.append(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return reply


def _one_scheduler(config: dict[str, Any]) -> dict[str, Any]:
    """The JSON configuration with one scheduling choice, as the protobuf's oneof allows: a model
    that streams and batches keeps `sequence_batching`, and the dynamic batcher's settings move
    into its `oldest` strategy, where Triton puts a sequence model's batching."""
    if "sequence_batching" not in config or "dynamic_batching" not in config:
        return config
    config = dict(config)
    batching = config.pop("dynamic_batching")
    oldest = {"max_candidate_sequences": max(1, config.get("max_batch_size", 1)), **batching}
    config["sequence_batching"] = {**config["sequence_batching"], "oldest": oldest}
    return config


def infer_request(request: pb.ModelInferRequest) -> tuple[InferenceRequest, RawInputs]:
    """The OIP request of a ModelInferRequest, and the inputs it sent as `raw_input_contents`.

    Triton's rule: raw contents come for every input or for none. Typed `contents` are read for
    FP32 only; the data plane names the datatype fault of any other."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; send the raw bytes of "
            "every input, in the order of `inputs`, or of none",
            field="raw_input_contents",
            code="invalid_input",
        )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        if raw and tensor.HasField("contents"):
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"input {tensor.name!r} has both `contents` and raw_input_contents[{i}]; send one",
                field=f"inputs[{i}].contents",
                code="invalid_input",
            )
        data = None if raw or tensor.datatype != "FP32" else list(tensor.contents.fp32_contents) or None
        inputs.append(
            RequestInput(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                parameters=_parameters(tensor.parameters),
                data=data,
            )
        )
    body = InferenceRequest(
        id=request.id or None,
        parameters=_parameters(request.parameters),
        inputs=inputs,
        outputs=[RequestOutput(name=o.name, parameters=_parameters(o.parameters)) for o in request.outputs] or None,
    )
    return body, dict(enumerate(raw))


def _parameters(parameters: Any) -> Parameters | None:
    """A protobuf map of InferParameter as OIP parameters (its one set value each), None if empty."""
    values: Parameters = {}
    for key, parameter in parameters.items():
        which = parameter.WhichOneof("parameter_choice")
        if which is not None:
            values[key] = getattr(parameter, which)
    return values or None


def _client(metadata: dict[str, str], peer: str) -> str:
    """The client address, as rate limits count it: the peer's (`ipv4:127.0.0.1:5000`,
    `ipv6:[::1]:5000`), or behind a proxy that uvicorn trusts (FORWARDED_ALLOW_IPS, as over
    HTTP) the address that proxy appended to `x-forwarded-for`."""
    address = peer.partition(":")[2]
    host = address.rpartition(":")[0].strip("[]") or address or peer
    forwarded = metadata.get("x-forwarded-for")
    trusted = {entry.strip() for entry in os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1").split(",")}
    if forwarded and ("*" in trusted or host in trusted):
        return forwarded.split(",")[-1].strip()
    return host


async def start_server(state: State, version: str, address: str, *, reuse_port: bool) -> grpc.aio.Server:
    """A started gRPC server on `address` (host:port) serving the app's state.

    `reuse_port`: the API processes of one `warmzoo serve` share the port (SO_REUSEPORT: the
    kernel spreads connections over them); otherwise a port in use is an error, not a silent share."""
    settings = state.settings
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # the limit of an HTTP inference body holds for a gRPC message too
            ("grpc.max_receive_message_length", settings.max_json_bytes),
            ("grpc.max_send_message_length", -1),
        ]
    )
    add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state, version), server)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise WarmzooError(
            Reason.UNAVAILABLE,
            f"cannot listen for gRPC on {address} ({exc}): is the port in use? `warmzoo serve --grpc-port` "
            "picks another, 0 turns gRPC off",
            code="grpc_port_unavailable",
        ) from None
    await server.start()
    log.info("gRPC /v2 listening on %s", address, extra={"event": "grpc.start"})
    return server
