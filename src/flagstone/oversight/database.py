"""Opening the case database: SQLite beside the store by default, PostgreSQL (or any SQLAlchemy URL)
by ``--db`` or ``$FLAGSTONE_DB``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from flagstone.errors import StoreError
from flagstone.oversight.schema import audit_head, metadata
from flagstone.oversight.upgrade import upgrade

DB_ENV = "FLAGSTONE_DB"


def resolve_db_url(db: str | None, store_path: str | Path) -> str:
    """``--db`` wins, then ``$FLAGSTONE_DB``, then ``<store>.cases.sqlite`` beside the store."""
    return db or os.environ.get(DB_ENV) or f"sqlite:///{Path(store_path).resolve()}.cases.sqlite"


def open_database(url: str, upgraded: list[str] | None = None) -> Engine:
    """An engine on ``url`` with the tables created; SQLite gets WAL and writer-first transactions.

    A database made by an older Flagstone is upgraded first (:mod:`flagstone.oversight.upgrade`);
    what was changed is appended to ``upgraded``, for the caller to audit."""
    kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        _private_file(url)
    try:
        engine = create_engine(url, **kwargs)
        if sqlite:
            _sqlite_writer_first(engine)
        metadata.create_all(engine)
        with engine.begin() as con:
            notes = upgrade(con)
        if upgraded is not None:
            upgraded.extend(notes)
        _check_columns(engine, url)
        with engine.begin() as con:
            if con.execute(select(audit_head.c.id)).first() is None:
                con.execute(insert(audit_head).values(id=1, size=0, frontier="[]"))
    except SQLAlchemyError as exc:
        raise StoreError(
            f"case database {safe_url(url)}: {exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}"
        ) from exc
    return engine


def _check_columns(engine: Engine, url: str) -> None:
    """Refuse a database whose tables an older Flagstone made without columns this one needs
    (``create_all`` adds missing tables, never missing columns)."""
    found = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            raise StoreError(
                f"case database {safe_url(url)}: table {table.name} lacks {', '.join(missing)} (made by an older "
                "Flagstone); migrate it or start a new case database"
            )


def _private_file(url: str) -> None:
    """Create a new SQLite file readable by its owner only (it holds password hashes and the
    encrypted identities of case parties); SQLite gives its -wal and -shm files the same mode."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:" or Path(path).exists():
        return
    with contextlib.suppress(OSError):  # a missing folder and the like: SQLite says so more precisely
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_writer_first(engine: Engine) -> None:
    # pysqlite starts transactions lazily and as readers; two writers would then deadlock on the
    # upgrade. BEGIN IMMEDIATE takes the write lock up front, so appends simply queue.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(con: Any) -> None:
        con.exec_driver_sql("BEGIN IMMEDIATE")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}:***@{tail}"
