"""Job priorities: workers claim the highest priority first (the starter catalogue runs lowest).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:  # batch: SQLite cannot alter tables in place
        jobs.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        jobs.drop_index("ix_jobs_claim")
        jobs.create_index("ix_jobs_claim", ["status", "priority", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_claim")
        jobs.create_index("ix_jobs_claim", ["status", "created_at"])
        jobs.drop_column("priority")
