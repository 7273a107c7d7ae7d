"""API routes that decide who may call them before their body is read.

FastAPI reads and parses a request body before it solves the dependencies, so the key check
(`reader`, `writer`) and the ownership checks ran only once a whole upload had arrived: a
192 MB anonymous upload was received, then refused. A `GuardedRoute` runs those checks first,
from the headers and the path alone; the dependencies solved afterwards find the principal
cached and pass again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from warmzoo.service.api.deps import owned_job, owned_model, publishing_as, reader, request_principal, writer
from warmzoo.service.registry.registry import Registry
from warmzoo.service.security.auth import Principal

# Checks of `(path parameter, principal, registry)` that a route may ask for among its dependencies.
OWNERSHIP: tuple[Callable[..., Any], ...] = (owned_model, owned_job, publishing_as)


def dependency_calls(dependant: Dependant) -> set[Callable[..., Any]]:
    """Every callable among the route's dependencies, however deeply nested."""
    calls, pending = set(), list(dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is not None:
            calls.add(dependency.call)
        pending += dependency.dependencies
    return calls


class GuardedRoute(APIRoute):
    """A route of the API (every router but the health probes'): 401, 403 or 404 for its key,
    scope and ownership before a byte of the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        calls = dependency_calls(self.dependant)
        ownership = [check for check in OWNERSHIP if check in calls]
        writes = writer in calls

        async def guarded(request: Request) -> Response:
            who = await request_principal(request)
            if writes:
                await writer(who)
            else:
                await reader(who, request.app.state.settings)
            if ownership:
                await run_in_threadpool(_check_ownership, request, who, ownership)
            return await handle(request)

        return guarded


def _check_ownership(request: Request, who: Principal, checks: list[Callable[..., Any]]) -> None:
    with request.app.state.sessions() as session:
        registry = Registry(session, request.app.state.blobs)
        for check in checks:
            parameter = next(iter(inspect.signature(check).parameters))  # `name` or `job_id`
            check(request.path_params[parameter], who, registry)
