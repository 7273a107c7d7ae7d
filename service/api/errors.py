"""The faces of errors: each domain reason's HTTP status and gRPC status code, and handlers that
turn every HTTP failure into one JSON body.

Body: `{"error": "<message naming the field>", "field": "<dotted.path>" | null, "code": "<slug>"}`.
The `error` key alone is also what the Open Inference Protocol expects. Over gRPC the message is
the status details, and `field` and `code` travel as trailing metadata (GRPC_FIELD_KEY, GRPC_CODE_KEY).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from warmzoo.service.core.errors import Reason, WarmzooError, validation_error
from warmzoo.service.core.logs import request_id
from warmzoo.service.registry.blobs import BlobStoreFull

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    error: str = Field(description="What went wrong and, where it helps, what to do next.")
    field: str | None = Field(None, description="Dotted path of the input at fault, when there is one.")
    code: str = Field(description="Stable machine-readable slug, e.g. `not_found`, `validation_error`.")


# How each domain reason is answered over HTTP.
HTTP_STATUS: dict[Reason, int] = {
    Reason.INVALID: 422,
    Reason.BAD_REQUEST: 400,
    Reason.UNAUTHENTICATED: 401,
    Reason.FORBIDDEN: 403,
    Reason.NOT_FOUND: 404,
    Reason.CONFLICT: 409,
    Reason.TOO_LARGE: 413,
    Reason.TOO_MANY: 429,
    Reason.UNAVAILABLE: 503,
    Reason.STORAGE_FULL: 507,
}
# How each domain reason is answered over gRPC: what a gRPC client branches on. A request the
# server refuses is never INTERNAL (that code means a server bug).
GRPC_STATUS: dict[Reason, grpc.StatusCode] = {
    Reason.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,  # what gRPC itself answers to an oversized message
    Reason.TOO_MANY: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.STORAGE_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
GRPC_CODE_KEY = "warmzoo-error-code"
GRPC_FIELD_KEY = "warmzoo-error-field"
GRPC_RETRY_KEY = "retry-after"
# Stable codes for the statuses the web framework raises itself (HTTPStatus phrases change between
# Python versions): an unknown route, a wrong method, a body over its limit.
_FRAMEWORK_CODES = {404: "not_found", 405: "method_not_allowed", 413: "content_too_large", 415: "unsupported_media_type"}
DATABASE_RETRY_AFTER_S = 5
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 for a body it cannot decode
REALM = 'Bearer realm="warmzoo"'
REFUSED_KEY_CODES = ("invalid_key", "revoked_key")  # a key was sent and refused: RFC 6750's invalid_token


def error_body(message: str, field: str | None, code: str) -> dict[str, Any]:
    return ErrorBody(error=message, field=field, code=code).model_dump()


def error_response(error: WarmzooError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer to a domain error, with the headers its reason calls for."""
    headers = dict(headers or {})
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.reason is Reason.UNAUTHENTICATED:
        invalid = error.code in REFUSED_KEY_CODES
        headers["WWW-Authenticate"] = f'{REALM}, error="invalid_token"' if invalid else REALM
    return JSONResponse(error.body(), status_code=HTTP_STATUS[error.reason], headers=headers or None)


def grpc_trailers(error: WarmzooError) -> tuple[tuple[str, str], ...]:
    """The trailing metadata of a gRPC error: the body's `code` and `field`, and when to retry."""
    trailers = [(GRPC_CODE_KEY, error.code)]
    if error.field is not None:
        trailers.append((GRPC_FIELD_KEY, error.field))
    if error.retry_after_s is not None:
        trailers.append((GRPC_RETRY_KEY, str(error.retry_after_s)))
    return tuple(trailers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def as_domain_error(exc: Exception) -> WarmzooError | None:
    """The domain error of a failure of the database or the blob store that is not a bug (HTTP
    and gRPC answer it like any other), or None."""
    if isinstance(exc, DataError):
        # The database refused a value the validation let through: still the client's input.
        message = "a value in the request cannot be stored or compared (out of range, or a NUL character)"
        return WarmzooError(Reason.INVALID, message, code="invalid_value")
    if isinstance(exc, DBAPIError) and (isinstance(exc, OperationalError) or exc.connection_invalidated):
        # Connection refused or lost, server shutting down, SQLite file unreadable or locked too
        # long. The pool reconnects on the next request (pre-ping), so this passes on its own.
        message = f"the registry database is unreachable; retry in a few seconds ({type(exc.orig).__name__})"
        return WarmzooError(
            Reason.UNAVAILABLE, message, code="database_unavailable", retry_after_s=DATABASE_RETRY_AFTER_S
        )
    if isinstance(exc, PoolTimeout):
        # Every pooled connection is taken (a burst of slow requests): the same request a moment later succeeds.
        message = "the server is busy: every database connection is in use; retry in a few seconds"
        return WarmzooError(Reason.UNAVAILABLE, message, code="database_busy", retry_after_s=DATABASE_RETRY_AFTER_S)
    if isinstance(exc, BlobStoreFull):
        message = f"the blob store has no space left ({exc}); nothing was stored, retry once space is freed"
        return WarmzooError(Reason.STORAGE_FULL, message)
    return None


def documented_methods(request: Request) -> str | None:
    """The `Allow` of a 405: the methods the OpenAPI document lists for the path (HEAD with GET).
    Starlette's own names those of the first route whose path matched only (GET of
    /v1/models/{name}, not its PATCH). None for a path the document does not describe."""
    state = request.app.state
    if getattr(state, "documented_paths", None) is None:
        paths = request.app.openapi()["paths"]
        state.documented_paths = [
            (re.compile(re.sub(r"\{[^/]+\}", "[^/]+", path)), {method.upper() for method in operations})
            for path, operations in paths.items()
        ]
    methods: set[str] = set()
    for pattern, documented in state.documented_paths:
        if pattern.fullmatch(request.url.path):
            methods |= documented
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through one JSON shape; unexpected ones become a logged 500."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WarmzooError)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await on_api_error(request, validation_error(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        if exc.status_code == 400:
            # Only body parsing raises a bare 400 (FastAPI for undecodable JSON, Starlette for broken
            # multipart; the service's own 400s are ApiErrors): a 422 like a JSON syntax error.
            content_type = (request.headers.get("content-type") or "no content type").split(";")[0]
            detail = "" if exc.detail == BODY_PARSE_ERROR else f" ({str(exc.detail).rstrip('.')})"
            message = (
                f"request body cannot be parsed as {content_type}{detail}:"
                " send UTF-8 JSON, or a well-formed multipart/form-data upload"
            )
            return error_response(WarmzooError(Reason.INVALID, message, code="invalid_body"))
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        headers = exc.headers
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            allowed = documented_methods(request)
            headers = {**(headers or {}), "Allow": allowed} if allowed else headers
        code = _FRAMEWORK_CODES.get(exc.status_code) or HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return JSONResponse(error_body(message, None, code), status_code=exc.status_code, headers=headers)

    async def on_infrastructure_error(request: Request, exc: Exception) -> JSONResponse:
        error = as_domain_error(exc)
        if error is None:
            return await on_unexpected(request, exc)
        log.error("%s on %s %s: %s", error.code, request.method, request.url.path, exc)
        return error_response(error)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        rid = request_id.get()
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        if rid is not None:
            message += f" (request id {rid})"
        headers = {"X-Request-ID": rid} if rid else None
        return JSONResponse(error_body(message, None, "internal"), status_code=500, headers=headers)

    app.add_exception_handler(WarmzooError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(DBAPIError, on_infrastructure_error)  # DataError is one
    app.add_exception_handler(PoolTimeout, on_infrastructure_error)
    app.add_exception_handler(BlobStoreFull, on_infrastructure_error)
    app.add_exception_handler(Exception, on_unexpected)
