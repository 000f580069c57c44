"""Alembic's environment for the case database: run by Alembic for every command, on the
connection :func:`flagstone.oversight.upgrade.upgrade` passes (inside its transaction), or else on
the configured URL (the command line of ``python -m flagstone.oversight.migrations``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import create_engine

from flagstone.oversight.migrations import compare_type
from flagstone.oversight.schema import metadata

config = context.config


def _applied(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    """Fold the notes a revision made into one line naming it: "0001 -> 0002 (its title): ..."."""
    notes: list[str] = config.attributes.setdefault("notes", [])
    mark: int = config.attributes.get("mark", 0)
    said = notes[mark:]
    down = ", ".join(step.down_revision_ids) or "empty"
    line = f"{down} -> {step.up_revision_id} ({getattr(step.up_revision, 'doc', '')})"
    notes[mark:] = [f"{line}: {'; '.join(said)}" if said else line]
    config.attributes["mark"] = len(notes)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters most columns only by copying the table
        compare_type=compare_type,
        on_version_apply=_applied,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.begin() as con:
            _run(con)
    finally:
        engine.dispose()
