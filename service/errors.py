"""One error type and the handlers that turn every failure into the same JSON body.

Body: `{"error": "<message naming the field>", "field": "<dotted.path>" | null, "code": "<slug>"}`.
The `error` key alone is also what the Open Inference Protocol expects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from service.blobs import BlobStoreFull
from service.logs import request_id

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    error: str = Field(description="What went wrong and, where it helps, what to do next.")
    field: str | None = Field(None, description="Dotted path of the input at fault, when there is one.")
    code: str = Field(description="Stable machine-readable slug, e.g. `not_found`, `validation_error`.")


class ApiError(Exception):
    """An expected failure with its HTTP status; raised by the service layer and the routes."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or _slug(status)
        self.headers = headers  # e.g. WWW-Authenticate on a 401, Retry-After on a 429 or 503

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=self.message, field=self.field, code=self.code).model_dump()


# Stable codes for the statuses the API uses (HTTPStatus phrases change between Python versions).
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal",
    503: "unavailable",
    507: "storage_full",
}
DATABASE_RETRY_AFTER_S = 5
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 for a body it cannot decode


def _slug(status: int) -> str:
    return _CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def dotted(loc: Sequence[int | str]) -> str:
    """("body", "spec", "hidden_size") -> "spec.hidden_size"; list indices stay as numbers."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def validation_error(errors: Sequence[Any], prefix: str = "") -> ApiError:
    """A 422 for pydantic errors, naming the first failing field (and how many others failed)."""
    first = errors[0]
    if first["type"] == "json_invalid" and first["loc"][:1] == ("body",):  # loc is ("body", character)
        detail = (first.get("ctx") or {}).get("error", first["msg"])
        return ApiError(422, f"request body is not valid JSON: {detail}", code="invalid_json")

    def path(error: Any) -> str:
        return dotted([prefix, *error["loc"]] if prefix else error["loc"])

    field = path(first)
    message = f"{field}: {first['msg']}" if field else first["msg"]
    if len(errors) > 1:
        message += f" (also invalid: {', '.join(path(e) or 'body' for e in errors[1:])})"
    return ApiError(422, message, field=field or None, code="validation_error")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through one JSON shape; unexpected ones become a logged 500."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

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
            return await on_api_error(request, ApiError(422, message, code="invalid_body"))
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        error = ApiError(exc.status_code, message)
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value the validation let through: still the client's input.
        log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
        message = "a value in the request cannot be stored or compared (out of range, or a NUL character)"
        return await on_api_error(request, ApiError(422, message, code="invalid_value"))

    async def on_database_unreachable(request: Request, exc: Exception) -> JSONResponse:
        # OperationalError: connection refused or lost, server shutting down, SQLite file unreadable or
        # locked too long. The pool reconnects on the next request (pre-ping), so this passes on its own.
        assert isinstance(exc, DBAPIError)
        if not isinstance(exc, OperationalError) and not exc.connection_invalidated:
            return await on_unexpected(request, exc)
        log.error("database unreachable on %s %s: %s", request.method, request.url.path, exc.orig)
        message = f"the registry database is unreachable; retry in a few seconds ({type(exc.orig).__name__})"
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        return await on_api_error(request, ApiError(503, message, code="database_unavailable", headers=retry))

    async def on_storage_full(request: Request, exc: Exception) -> JSONResponse:
        log.error("blob store full on %s %s: %s", request.method, request.url.path, exc)
        message = f"the blob store has no space left ({exc}); nothing was stored, retry once space is freed"
        return await on_api_error(request, ApiError(507, message, code="storage_full"))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        rid = request_id.get()
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        if rid is not None:
            message += f" (request id {rid})"
        error = ApiError(500, message)
        return JSONResponse(error.body(), status_code=500, headers={"X-Request-ID": rid} if rid else None)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(DBAPIError, on_database_unreachable)
    app.add_exception_handler(BlobStoreFull, on_storage_full)
    app.add_exception_handler(Exception, on_unexpected)
