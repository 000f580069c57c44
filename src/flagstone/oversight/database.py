"""Opening the case database: SQLite beside the store by default, PostgreSQL (or any SQLAlchemy URL)
by ``--db`` or ``$FLAGSTONE_DB``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.exc import SQLAlchemyError

from flagstone.errors import StoreError
from flagstone.oversight.schema import audit_head
from flagstone.oversight.upgrade import upgrade

DB_ENV = "FLAGSTONE_DB"


def resolve_db_url(db: str | None, store_path: str | Path) -> str:
    """``--db`` wins, then ``$FLAGSTONE_DB``, then ``<store>.cases.sqlite`` beside the store."""
    return db or os.environ.get(DB_ENV) or f"sqlite:///{Path(store_path).resolve()}.cases.sqlite"


def open_database(url: str, upgraded: list[str] | None = None, *, upgrade_allowed: bool = True) -> Engine:
    """An engine on ``url`` with the tables created; SQLite gets WAL and writer-first transactions.

    A new database gets the tables; one made by an older Flagstone is upgraded to this one's
    revision, in one transaction (:mod:`flagstone.oversight.upgrade`); what was applied is appended
    to ``upgraded``, one line a revision, for the caller to audit. Without ``upgrade_allowed`` an
    older database is refused rather than upgraded unaudited."""
    kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        _private_file(url)
    try:
        engine = create_engine(url, **kwargs)
        if sqlite:
            _sqlite_writer_first(engine)
        with engine.connect() as con, _foreign_keys_off(con), con.begin():
            notes = upgrade(con, allowed=upgrade_allowed)
            if notes and sqlite:
                _check_foreign_keys(con)
            if con.execute(select(audit_head.c.id)).first() is None:
                con.execute(insert(audit_head).values(id=1, size=0, frontier="[]"))
        if upgraded is not None:
            upgraded.extend(notes)
    except StoreError as exc:
        raise StoreError(f"case database {safe_url(url)}: {exc}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"case database {safe_url(url)}: {exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}"
        ) from exc
    return engine


@contextlib.contextmanager
def _foreign_keys_off(con: Connection) -> Iterator[None]:
    """SQLite changes a table by copying it, which its foreign keys would refuse (the old table,
    dropped, still has children): they are off for the upgrade, and checked before it commits. The
    pragma is a no-op inside a transaction, so it goes straight to the driver, before one begins."""
    raw = con.connection.dbapi_connection if con.dialect.name == "sqlite" else None
    if raw is None:
        yield
        return
    raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[attr-defined]


def _check_foreign_keys(con: Connection) -> None:
    broken = con.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise StoreError(f"the upgrade would leave {len(broken)} rows without their parent, the first {broken[0]}")


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
