"""Size limits from the settings, checked before any work starts so a bad request costs nothing."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.spec import RNNSpec
from service.config import Settings
from service.errors import ApiError


def check_spec(spec: RNNSpec, settings: Settings, field: str = "spec") -> None:
    """422 naming the first spec dimension above its configured maximum."""
    bounds = {
        "hidden_size": ("max_hidden_size", settings.max_hidden_size),
        "num_layers": ("max_layers", settings.max_layers),
        "input_size": ("max_input_size", settings.max_input_size),
        "output_size": ("max_output_size", settings.max_output_size),
    }
    for name, (setting, maximum) in bounds.items():
        value = getattr(spec, name)
        if value > maximum:
            raise ApiError(
                422,
                f"{field}.{name} is {value}; this server accepts at most {maximum} (setting WARMZOO_{setting.upper()})",
                field=f"{field}.{name}",
                code="limit_exceeded",
            )


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through to the JSON error handler."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"request body is larger than the {limit}-byte limit (setting WARMZOO_{setting.upper()})")


class BodySizeLimit:
    """ASGI middleware refusing request bodies above their limit: at once when Content-Length
    says so (nothing is read), else as soon as the received stream passes the limit.

    Multipart bodies (weight and data uploads) are streamed to a spooled file and get
    `max_upload_bytes`; every other body (JSON) is parsed whole in memory, many times its size,
    so it gets the smaller `max_json_bytes`."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").lower().startswith("multipart/"):
            limit, setting = self.max_upload_bytes, "max_upload_bytes"
        else:
            limit, setting = self.max_json_bytes, "max_json_bytes"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit, setting)
            body = ApiError(413, error.detail, code="content_too_large").body()
            await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        await self.app(scope, limited, send)
