"""Datasets get an owner, and idempotency keys are unique per owner, not across the server.

Before, one owner's `Idempotency-Key` could take (or be refused because of) another's job.
`jobs.idempotency_scope` is the submitter's owner name ('' for jobs without one: auth off, the
server's own), so that the uniqueness holds for those too (NULLs are never equal in SQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as datasets:  # batch: SQLite cannot alter tables in place
        datasets.add_column(sa.Column("owner", sa.String(200), nullable=True))
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("idempotency_scope", sa.String(200), nullable=False, server_default=""))
    op.execute("UPDATE jobs SET idempotency_scope = owner WHERE owner IS NOT NULL")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        jobs.create_unique_constraint("uq_jobs_idempotency_scope", ["idempotency_scope", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_constraint("uq_jobs_idempotency_scope", type_="unique")
        jobs.drop_column("idempotency_scope")
    # keys used by several owners would break the old, server-wide constraint: keep the oldest job's
    op.execute(
        "UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM jobs AS older WHERE older.idempotency_key = jobs.idempotency_key"
        " AND (older.created_at < jobs.created_at OR (older.created_at = jobs.created_at AND older.id < jobs.id)))"
    )
    with op.batch_alter_table("jobs") as jobs:
        jobs.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
    with op.batch_alter_table("datasets") as datasets:
        datasets.drop_column("owner")
