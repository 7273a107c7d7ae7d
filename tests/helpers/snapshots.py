"""What a refused or interrupted request must leave as it was: every table's rows and every blob."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from warmzoo.service.registry.blobs import BlobStore
from warmzoo.service.registry.db import make_engine
from warmzoo.service.registry.tables import Base


@dataclass(frozen=True)
class StoreState:
    rows: dict[str, int]  # table -> row count
    blobs: frozenset[str]  # sha256 names
    leftovers: frozenset[str]  # temporary files or unfinished uploads


def store_state(database_url: str, blobs: BlobStore) -> StoreState:
    """Row counts of every table of the schema, and what the blob store holds."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = {
                table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()
    return StoreState(
        rows, frozenset(blob.sha256 for blob in blobs.list()), frozenset(left.name for left in blobs.leftovers())
    )
