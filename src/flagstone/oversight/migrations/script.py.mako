"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Say what the revision changes with note(...): it is written to the audit log with the upgrade. Keep
every value; SQLite changes a column only by copying its table (batch_alter_table does it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagstone.oversight.migrations import note
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    note("...")  # what changed, in a few words


def downgrade() -> None:
    raise NotImplementedError("the case database is never downgraded: restore a copy made before the upgrade")
