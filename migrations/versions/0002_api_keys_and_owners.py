"""API keys, and who submitted each job (its owner and key, for cancel rights and the per-key cap).

`models.owner` exists since 0001; models published before auth keep owner NULL (admins only).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner"])
    with op.batch_alter_table("jobs") as jobs:  # batch: SQLite cannot alter tables in place
        jobs.add_column(sa.Column("owner", sa.String(200), nullable=True))
        jobs.add_column(sa.Column("key_id", sa.String(16), nullable=True))
        jobs.create_index("ix_jobs_key_status", ["key_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_key_status")
        jobs.drop_column("key_id")
        jobs.drop_column("owner")
    op.drop_index("ix_api_keys_owner", table_name="api_keys")
    op.drop_table("api_keys")
