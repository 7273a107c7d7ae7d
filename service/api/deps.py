"""What route handlers get injected: settings, a database session, the blob store, the registry,
pagination, and who is asking (the principal, its scope checked, its request rate limited).

Everything comes from `app.state`, set up by `warmzoo.service.api.app.create_app`, so that each app (and
each test) carries its own configuration. A dependency that does no I/O is `async def`: FastAPI
runs a plain `def` one in its threadpool, a thread hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import limit_exceeded
from warmzoo.service.jobs import lifecycle
from warmzoo.service.registry.blobs import BlobStore
from warmzoo.service.registry.registry import MAX_INT, Registry, check_name
from warmzoo.service.security import auth
from warmzoo.service.security.auth import Principal
from warmzoo.service.security.ratelimit import rate_limited


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def db_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards. Opening one
    does no I/O, so it happens on the event loop (a plain generator would cost a thread hop);
    closing one that holds a connection sends a ROLLBACK, which must not stall the loop when the
    database hangs, so that happens in the threadpool."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


async def blob_store(request: Request) -> BlobStore:
    return request.app.state.blobs


SettingsDep = Annotated[Settings, Depends(app_settings)]
SessionDep = Annotated[Session, Depends(db_session)]
BlobsDep = Annotated[BlobStore, Depends(blob_store)]


async def registry(session: SessionDep, blobs: BlobsDep) -> Registry:
    return Registry(session, blobs)


RegistryDep = Annotated[Registry, Depends(registry)]


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


async def pagination(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="Items per page (at most the server's max_page_size).")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="Items to skip.")] = 0,
) -> Pagination:
    if limit > settings.max_page_size:
        raise limit_exceeded(f"limit is {limit}", settings.max_page_size, "max_page_size", "limit", "use offset to page on")
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]


# Declares the scheme in the OpenAPI document (the "Authorize" button of /docs); the header
# itself is read below, so that a malformed one is a 401 rather than silently anonymous.
BEARER = HTTPBearer(auto_error=False, description="An API key from `warmzoo keys create`.")


async def principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
) -> Principal:
    """Who sends the request; 401 for a key that is malformed, unknown or revoked."""
    return await request_principal(request)


async def request_principal(request: Request) -> Principal:
    """`identify` once per request: `api.routing` asks first, before the body is read, and the
    dependencies solved afterwards ask again."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is None:
        known = request.state.principal = await identify(request.app.state, request.headers.get("authorization"))
    return known


async def identify(state: State, authorization: str | None) -> Principal:
    """The principal of an `Authorization` value (HTTP header or gRPC metadata). A keyed request
    reads its key in a session of its own, so that the key check costs one query and anonymous
    requests none."""
    if not auth.auth_enabled(state.settings):
        return auth.AUTH_OFF
    if authorization is None:
        return auth.ANONYMOUS

    def lookup() -> Principal:
        with state.sessions() as session:
            return auth.authenticate(session, authorization)

    return await run_in_threadpool(lookup)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def reader(who: PrincipalDep, settings: SettingsDep) -> Principal:
    return may_read(who, settings)


def may_read(who: Principal, settings: Settings) -> Principal:
    """Anyone, when anonymous reads are allowed; else a key of any scope."""
    return who if who.scope is None and settings.anonymous_read else auth.require(who, "read")


ReaderDep = Annotated[Principal, Depends(reader)]


async def writer(who: PrincipalDep) -> Principal:
    return auth.require(who, "write")


WriterDep = Annotated[Principal, Depends(writer)]


async def caller(request: Request, who: PrincipalDep) -> str:
    return caller_identity(who, request.client.host if request.client else "?")


def caller_identity(who: Principal, client: str) -> str:
    """Whom quotas count against: the API key, or without one the client address."""
    return f"key {who.key_id}" if who.key_id else f"client {client}"


CallerDep = Annotated[str, Depends(caller)]


async def rate_limit(request: Request, identity: CallerDep) -> None:
    count_request(request.app.state, identity)


def count_request(state: State, identity: str) -> None:
    """429 with Retry-After once the key (or, without one, the client address) is over its rate."""
    buckets = state.rate_limits
    if buckets is None:
        return
    wait = buckets.take(identity)
    if wait:
        raise rate_limited(wait, identity)


def owned_model(name: str, who: WriterDep, registry: RegistryDep) -> None:
    """For routes that change model `name`: 404 if there is none, 403 unless `who` owns it."""
    auth.check_model_owner(who, registry.get_model(name))


def owned_job(job_id: str, who: WriterDep, registry: RegistryDep) -> None:
    """For routes that change job `job_id`: 404 if there is none, 403 unless `who` owns it."""
    auth.check_job_owner(who, lifecycle.get(registry.session, job_id))


def publishing_as(name: str, who: WriterDep, registry: RegistryDep) -> str | None:
    """Whom a version uploaded to `name` is published as; 403 when the name is another's."""
    return auth.publisher(who, registry.session, check_name(name))


OwnedModel = Depends(owned_model)
OwnedJob = Depends(owned_job)
PublisherDep = Annotated[str | None, Depends(publishing_as)]
