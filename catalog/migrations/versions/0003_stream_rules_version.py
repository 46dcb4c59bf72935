"""stream_runs.rules_version: the rule version a stream's detect query runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stream_runs", sa.Column("rules_version", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("stream_runs", "rules_version")
