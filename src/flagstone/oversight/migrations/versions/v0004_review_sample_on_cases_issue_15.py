"""review sample on cases (issue 15)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Cases whose alert falls in the active triage model's review sample are marked: the queue shows
them first, whatever their priority, so that reviewers' decisions also cover low-priority alerts.
One new column, empty on existing cases until the next sync; nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagstone.oversight.migrations import note

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_sample", sa.Boolean(), nullable=True))
    note("cases gained review_sample (empty until the next sync)")


def downgrade() -> None:
    raise NotImplementedError("the case database is never downgraded: restore a copy made before the upgrade")
