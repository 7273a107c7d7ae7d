"""JSON answers serialised once, by pydantic-core.

A route that returns a pydantic model has FastAPI validate it against the response model
again and then serialise it; for a plain `def` route the validation runs in the threadpool,
one more thread hop per request. The hot read routes build their answer model themselves
(already valid), so they return it as JSON directly and name the model in the route's
`response_model` for the OpenAPI document.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel, *, exclude_none: bool = False) -> Response:
    return Response(model.model_dump_json(exclude_none=exclude_none), media_type="application/json")
