"""Shared fixtures of the service tests: a real database (SQLite, and PostgreSQL when reachable),
a blob directory under tmp_path, the app, and tiny networks to publish.

PostgreSQL: the tests create a uniquely named database on the server of
WARMZOO_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) and drop
it afterwards. Without a server those tests are skipped, except under CI=true, where they fail.

Redis: the tests use the server of WARMZOO_TEST_REDIS_URL (default redis://127.0.0.1:6379/15)
under a unique key prefix, and delete their keys afterwards; the same skip/fail policy applies.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.skips import unavailable
from warmzoo.models.spec import RNNSpec
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory, upgrade_database
from warmzoo.service.registry.registry import Registry
from warmzoo.service.registry.tables import Base

POSTGRES_URL = os.environ.get("WARMZOO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HOW_TO_RUN_POSTGRES = (
    "start one, e.g. `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`, "
    "or point WARMZOO_TEST_POSTGRES_URL at a server whose user may CREATE DATABASE"
)
REDIS_URL = os.environ.get("WARMZOO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HOW_TO_RUN_REDIS = "start one, e.g. `docker run -d -p 6379:6379 redis:7`, or point WARMZOO_TEST_REDIS_URL at a server"


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
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc.orig}); {HOW_TO_RUN_POSTGRES}")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_database(Settings(database_url=url))
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite registry migrated to head once per session. Each test starts from a copy: a fresh
    migration is a few hundred milliseconds of synced writes, a copy is one file."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("migrated"))
    upgrade_database(settings)
    return Path(make_url(settings.database_url).database or "")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings with a fresh data dir (on SQLite, a copy of the migrated database), auth and rate
    limits off (test_auth.py and test_quotas.py turn them on); on PostgreSQL the shared test
    database is emptied afterwards."""
    data_dir = tmp_path_factory.mktemp("data")
    open_access = {"auth": "off", "rate_limit_per_s": 0}
    if request.param == "sqlite":
        fresh = Settings(data_dir=data_dir, **open_access)
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), make_url(fresh.database_url).database or "")
        yield fresh
        return
    url = request.getfixturevalue("postgres_url")
    yield Settings(data_dir=data_dir, database_url=url, **open_access)
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


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL, a unique key prefix) for one test; every key under the prefix is deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis is not reachable at {REDIS_URL} ({exc}); {HOW_TO_RUN_REDIS}")
    prefix = f"warmzoo-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server for this test session: moto's, on 127.0.0.1 at a free port."""
    from moto.server import ThreadedMotoServer  # the test extra installs it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh bucket on the test server; boto3 finds credentials, region and endpoint in the
    environment, as a deployment's would (and never the developer's own ~/.aws files)."""
    import boto3

    no_aws_files = tmp_path_factory.mktemp("aws") / "absent"
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "WARMZOO_S3_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_aws_files))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_aws_files))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    bucket = f"warmzoo-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
