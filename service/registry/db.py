"""Database engine, sessions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from warmzoo.service.core.config import Settings

SQLITE_POOL_SIZE = 20  # about the requests one process serves at once (the threadpool has 40 threads)
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The Alembic scripts: a folder beside `service`, found by path (their env.py imports this module).
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
_MIGRATION_LOCK_KEY = 0x7761726D7A6F6F  # "warmzoo": one PostgreSQL advisory lock for all replicas


def make_engine(url: str, pool_timeout_s: float = 30.0) -> Engine:
    """An engine ready for concurrent use: SQLite gets WAL, a busy timeout and foreign keys.
    A request that finds every pooled connection taken waits `pool_timeout_s`, then fails
    (sqlalchemy.exc.TimeoutError, which the API answers 503)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_timeout=pool_timeout_s)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=SQLITE_POOL_SIZE,  # kept open: a new connection costs a file open and three pragmas
        pool_timeout=pool_timeout_s,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database file in WAL mode, which then stays with the file. Switching needs the
    database to itself, and SQLite answers "database is locked" at once instead of waiting on
    the busy timeout: processes starting together on a new file retry until it runs out."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # an in-memory database stays "memory"
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (handlers serialise them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, independent of the working directory (works when installed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply pending migrations; safe when several processes start at once."""
    engine = make_engine(settings.database_url)
    try:
        with _migration_lock(engine) as connection:
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
    finally:
        engine.dispose()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """Serialise migrations: an advisory lock on PostgreSQL, a lock file beside the SQLite file."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
            return
        database = engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
        if lock_path is None:
            yield connection
            return
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield connection
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
