"""triage scores on cases (issue 15)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Each case gets the active triage model's priority for its alert, the explanation and the model's
id: they order the review queue and say why. Three new columns, empty on existing cases until the
next sync; nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagstone.oversight.migrations import note

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain types here, not schema.Str: a revision is frozen, whatever the schema module becomes.
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("explanation", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("triage_model", sa.Text(), nullable=True))
    note("cases gained priority, explanation and triage_model (empty until the next sync)")


def downgrade() -> None:
    raise NotImplementedError("the case database is never downgraded: restore a copy made before the upgrade")
