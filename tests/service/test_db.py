"""Settings, engine and migrations: the hand-written migration must build exactly the ORM schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from tests.helpers.threads import run_in_threads
from warmzoo.service.core.config import Settings
from warmzoo.service.registry.db import alembic_config, make_engine, upgrade_database
from warmzoo.service.registry.tables import Base


def test_defaults_live_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WARMZOO_MAX_LAYERS", "3")
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'warmzoo.db'}"
    assert settings.blob_store == str(tmp_path / "blobs")
    assert settings.max_layers == 3
    assert settings.executor == "embedded" and settings.sequence_store == "memory"


def test_explicit_urls_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMZOO_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("WARMZOO_BLOB_STORE", "/srv/blobs")
    settings = Settings()
    assert (settings.database_url, settings.blob_store) == ("postgresql+psycopg://u@h/db", "/srv/blobs")


def test_migrations_build_the_orm_schema(settings: Settings) -> None:
    upgrade_database(settings)
    upgrade_database(settings)  # idempotent: a second start changes nothing
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0005"
    engine.dispose()


def test_sqlite_is_set_up_for_concurrency(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'z.db'}")  # parent directories are created
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_concurrent_starts_migrate_once(tmp_path: Path) -> None:
    """Several processes (here threads) starting on an empty database must not race the migration,
    nor each other's switch of the new file to WAL (which failed about 1 start in 20): 30 times."""
    for attempt in range(30):
        settings = Settings(data_dir=tmp_path / str(attempt))
        run_in_threads(lambda _, settings=settings: upgrade_database(settings), 4)


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "base")
        connection.commit()
        assert inspect(connection).get_table_names() == ["alembic_version"]
    upgrade_database(settings)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) >= {"models", "versions", "files", "jobs"}
    engine.dispose()
