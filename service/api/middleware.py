"""ASGI middleware of the API: request-body size limits, checked before a body is read, and the
security headers of every response."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warmzoo.service.api.errors import error_response
from warmzoo.service.core.errors import Reason, WarmzooError


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
            too_large = WarmzooError(Reason.TOO_LARGE, error.detail)
            await error_response(too_large, headers={"Connection": "close"})(scope, receive, send)
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


# Scripts, styles, images and requests from this server only (the UI and /docs need no other
# origin, nor inline scripts); images may also be data: URLs (Swagger UI's icons); no page may
# frame this one (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",  # a downloaded file or a JSON error is never run as a script
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response, of the UI and the API alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
