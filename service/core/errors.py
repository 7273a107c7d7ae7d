"""The one error the domain raises: what went wrong, for whom to fix, in words a user can act on.

It names a `Reason` (what kind of failure), never a transport status: the API layer alone maps
reasons to HTTP statuses (`warmzoo.service.api.errors`) and to gRPC status codes, so workers
and Ray tasks never load the web framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Kinds of expected failure, each answered the same way by every protocol. The value is the
    error's default `code`."""

    INVALID = "validation_error"  # a value breaks a documented rule (a JSON field, a form field, a file)
    BAD_REQUEST = "bad_request"  # an inference request the protocol refuses (OIP answers these with 400)
    UNAUTHENTICATED = "unauthorized"  # no usable API key
    FORBIDDEN = "forbidden"  # a key whose scope or ownership does not allow this
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # the resource's current state forbids it (already ended, key reused, ...)
    TOO_LARGE = "content_too_large"  # the request body itself is over its byte limit
    TOO_MANY = "too_many_requests"  # a rate or quota is used up for now; retrying later helps
    UNAVAILABLE = "unavailable"  # the server cannot do it now (a store down, a model that cannot load)
    STORAGE_FULL = "storage_full"


class WarmzooError(Exception):
    """An expected failure: its reason, a message that names the field and says what to do next,
    the dotted path of the input at fault, and a stable slug (`code`) for programs."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        field: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field
        self.code = code or reason.value
        self.retry_after_s = retry_after_s  # when retrying later helps: sent as Retry-After

    def body(self) -> dict[str, Any]:
        """The error as every answer carries it (HTTP bodies, a failed job's `error`)."""
        return {"error": self.message, "field": self.field, "code": self.code}


def limit_exceeded(
    stated: str, maximum: int, setting: str, field: str | None, hint: str = "", reason: Reason = Reason.INVALID
) -> WarmzooError:
    """The one wording for "over a configured limit": what was asked ("limit is 500"), the
    maximum, the setting that raises it, and optionally what to do instead. `reason` is
    BAD_REQUEST for inference requests (the protocol answers those with 400)."""
    message = f"{stated}; this server accepts at most {maximum} (setting WARMZOO_{setting.upper()})"
    return WarmzooError(reason, message + (f": {hint}" if hint else ""), field=field, code="limit_exceeded")


def dotted(loc: Sequence[int | str]) -> str:
    """("body", "spec", "hidden_size") -> "spec.hidden_size"; list indices stay as numbers."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def validation_error(errors: Sequence[Any], prefix: str = "") -> WarmzooError:
    """Pydantic's errors as one error naming the first failing field (and how many others failed)."""
    first = errors[0]
    if first["type"] == "json_invalid" and first["loc"][:1] == ("body",):  # loc is ("body", character)
        detail = (first.get("ctx") or {}).get("error", first["msg"])
        return WarmzooError(Reason.INVALID, f"request body is not valid JSON: {detail}", code="invalid_json")

    def path(error: Any) -> str:
        return dotted([prefix, *error["loc"]] if prefix else error["loc"])

    field = path(first)
    message = f"{field}: {first['msg']}" if field else first["msg"]
    if len(errors) > 1:
        message += f" (also invalid: {', '.join(path(e) or 'body' for e in errors[1:])})"
    return WarmzooError(Reason.INVALID, message, field=field or None, code="validation_error")
