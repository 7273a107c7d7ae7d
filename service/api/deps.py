"""What route handlers get injected: settings, a database session, the blob store, the registry,
pagination.

Everything comes from `app.state`, set up by `service.app.create_app`, so that each app (and
each test) carries its own configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from service.blobs import BlobStore
from service.config import Settings
from service.errors import ApiError
from service.registry import MAX_INT, Registry


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def db_session(request: Request) -> Iterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards."""
    with request.app.state.sessions() as session:
        yield session


def blob_store(request: Request) -> BlobStore:
    return request.app.state.blobs


SettingsDep = Annotated[Settings, Depends(app_settings)]
SessionDep = Annotated[Session, Depends(db_session)]
BlobsDep = Annotated[BlobStore, Depends(blob_store)]


def registry(session: SessionDep, blobs: BlobsDep) -> Registry:
    return Registry(session, blobs)


RegistryDep = Annotated[Registry, Depends(registry)]


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


def pagination(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="Items per page (at most the server's max_page_size).")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="Items to skip.")] = 0,
) -> Pagination:
    if limit > settings.max_page_size:
        raise ApiError(
            422,
            f"limit is {limit}; at most {settings.max_page_size} per page, use offset to page on",
            field="limit",
            code="limit_exceeded",
        )
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]
