"""Shared fixtures of the service tests: a real database (SQLite, and PostgreSQL when reachable),
a blob directory under tmp_path, the app, and tiny networks to publish.

PostgreSQL: the tests create a uniquely named database on the server of
WARMZOO_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) and drop
it afterwards. Without a server those tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from models.spec import RNNSpec
from service.app import create_app
from service.blobs import LocalBlobStore
from service.config import Settings
from service.db import make_engine, session_factory, upgrade_database
from service.registry import Registry
from service.tables import Base
from tests.service.factories import tiny_spec, tiny_weights

POSTGRES_URL = os.environ.get("WARMZOO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HOW_TO_RUN_POSTGRES = (
    "start one, e.g. `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`, "
    "or point WARMZOO_TEST_POSTGRES_URL at a server whose user may CREATE DATABASE"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session, migrated to head, dropped at the end."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"warmzoo_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc.orig}); {HOW_TO_RUN_POSTGRES}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_database(Settings(database_url=url))
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings with a fresh data dir; on PostgreSQL the shared test database is emptied afterwards."""
    data_dir = tmp_path_factory.mktemp("data")
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir)
        return
    url = request.getfixturevalue("postgres_url")
    yield Settings(data_dir=data_dir, database_url=url)
    engine = make_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    """The registry over a migrated database and a blob directory, as the app builds it."""
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        yield Registry(session, LocalBlobStore(settings.blob_store))
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def upload(client: TestClient) -> Callable[..., Response]:
    """POST weights as a new version: upload(name, spec=None, weights=None, **form fields)."""

    def post(name: str, spec: RNNSpec | str | None = None, weights: bytes | None = None, **form: str) -> Response:
        spec = tiny_spec() if spec is None else spec
        data = {"spec": spec if isinstance(spec, str) else spec.model_dump_json(), **form}
        if weights is None:
            weights = tiny_weights(spec if isinstance(spec, RNNSpec) else None)
        return client.post(f"/v1/models/{name}/versions", data=data, files={"weights": ("w.safetensors", weights)})

    return post
