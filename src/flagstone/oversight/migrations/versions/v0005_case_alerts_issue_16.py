"""one case per scheme: case_alerts (issue 16)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A case may now hold several alerts: those of one scheme (alerts with mostly the same evidence,
schemes.py). The new table lists every alert of every case; each existing case gets one row, its
own alert, copied from the case with the evidence it holds. Nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagstone.oversight.migrations import note

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain types here, not schema.Str: a revision is frozen, whatever the schema module becomes.
    op.create_table(
        "case_alerts",
        sa.Column("alert_id", sa.Text(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("typologies", sa.Text(), nullable=False),
        sa.Column("first_ts", sa.DateTime(), nullable=False),
        sa.Column("last_ts", sa.DateTime(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_case_alerts_case_id", "case_alerts", ["case_id"])
    op.execute(
        """INSERT INTO case_alerts (alert_id, case_id, rule_id, rule_version, severity, group_key, reason,
                                    values_json, typologies, first_ts, last_ts, evidence_count, added_at)
           SELECT c.alert_id, c.id, c.rule_id, c.rule_version, c.severity, c.group_key, c.reason, c.values_json, '',
                  c.first_ts, c.last_ts, (SELECT count(*) FROM case_events e WHERE e.case_id = c.id), c.detected_at
           FROM cases c"""
    )
    note("case_alerts made: every existing case holds its own alert")


def downgrade() -> None:
    raise NotImplementedError("the case database is never downgraded: restore a copy made before the upgrade")
