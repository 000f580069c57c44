"""The case database's migrations (Alembic), shipped in the package and configured here, with no
alembic.ini: :func:`alembic_config` points Alembic at this folder.

Every change to :mod:`flagstone.oversight.schema` comes with a revision in ``versions/`` that
brings a database from the revision before to it; a test fails when the head differs from the
schema. ``python -m flagstone.oversight.migrations`` runs Alembic's commands on this configuration
(docs/oversight.md, "Schema migrations"). A revision says what it changed with :func:`note`, so
that the upgrade can be audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import context
from alembic.config import Config
from sqlalchemy import String

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Any = None, url: str | None = None) -> Config:
    """Alembic's configuration for the case database: on ``connection`` (an open SQLAlchemy
    connection, in its transaction) or on ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    cfg.attributes["notes"] = []
    return cfg


def note(text: str) -> None:
    """Inside a revision: say what it changed. The revision's changes make one line of the
    ``case_database_upgraded`` audit entry (see env.py)."""
    context.config.attributes.setdefault("notes", []).append(text)


def compare_type(ctx: Any, inspected_column: Any, metadata_column: Any, inspected: Any, declared: Any) -> bool | None:
    """Alembic's type comparison, except that on PostgreSQL TEXT and a VARCHAR without a length are
    the same type (False: no difference). ``create_all`` makes an unbounded :class:`Str` a VARCHAR
    there (psycopg's dialect adapts Text to its String), while migrations and the upgrade before
    them made TEXT; both are in use. None leaves the rest to Alembic."""
    if ctx.dialect.name != "postgresql" or not isinstance(inspected, String) or inspected.length is not None:
        return None
    compiled = ctx.dialect.type_compiler_instance.process(declared.dialect_impl(ctx.dialect))
    return False if compiled in ("TEXT", "VARCHAR") else None
