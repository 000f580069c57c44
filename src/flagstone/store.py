"""The event store: one DuckDB file holding events, reference tables, quarantine and alerts (and,
for the scoring service, the decisions it gave and the intake-log segments it absorbed).

Every writer goes through a transaction (``Store.transaction``) so that a batch lands whole or not
at all; DuckDB's write-ahead log makes that hold even when the process is killed mid-batch.

The store and every file beside it are readable by their owner only (``flagstone.owner_only``):
opening a store makes this process create files 0600 and folders 0700 from then on, and tightens
what an older Flagstone left readable by others, saying so on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.errors import StoreError
from flagstone.events import CATALOGUE_COLUMNS, DECIMAL_SQL, ENTITY_COLUMNS, EVENT_COLUMNS, Column
from flagstone.owner_only import owner_only_umask, tighten_store

DEFAULT_STORE = "flagstone.duckdb"
STORE_ENV = "FLAGSTONE_STORE"


def _columns(cols: tuple[Column, ...]) -> str:
    return ",\n  ".join(f"{c.name} {c.sql_type}{' NOT NULL' if c.required else ''}" for c in cols)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
  {_columns(EVENT_COLUMNS)},
  batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
  {_columns(ENTITY_COLUMNS)},
  source VARCHAR NOT NULL,
  batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS catalogue (
  {_columns(CATALOGUE_COLUMNS)},
  source VARCHAR NOT NULL,
  batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_batches (
  batch_id BIGINT PRIMARY KEY,
  source VARCHAR NOT NULL,
  target VARCHAR NOT NULL,
  file VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  read BIGINT NOT NULL DEFAULT 0,
  loaded BIGINT NOT NULL DEFAULT 0,
  quarantined BIGINT NOT NULL DEFAULT 0,
  duplicates BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS quarantine (
  batch_id BIGINT NOT NULL,
  source VARCHAR NOT NULL,
  file VARCHAR NOT NULL,
  record BIGINT NOT NULL,
  field VARCHAR,
  value VARCHAR,
  reason VARCHAR NOT NULL,
  parsed JSON,
  raw_nonce BLOB,
  raw_sealed BLOB
);
CREATE TABLE IF NOT EXISTS identities (
  pseudonym VARCHAR PRIMARY KEY,
  nonce BLOB NOT NULL,
  ciphertext BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS scans (
  scan_id BIGINT PRIMARY KEY,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  rules JSON NOT NULL,
  alerts BIGINT
);
CREATE TABLE IF NOT EXISTS alerts (
  alert_id VARCHAR PRIMARY KEY,
  scan_id BIGINT NOT NULL,
  rule_id VARCHAR NOT NULL,
  rule_version INTEGER NOT NULL,
  severity VARCHAR NOT NULL,
  group_key VARCHAR NOT NULL,
  first_ts TIMESTAMP NOT NULL,
  last_ts TIMESTAMP NOT NULL,
  fire_source VARCHAR NOT NULL,
  fire_event_id VARCHAR NOT NULL,
  evidence_sources VARCHAR[] NOT NULL,
  evidence VARCHAR[] NOT NULL,
  "values" JSON NOT NULL,
  reason VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS served (
  source VARCHAR NOT NULL,
  event_id VARCHAR NOT NULL,
  received_at TIMESTAMP NOT NULL,
  content_hash VARCHAR NOT NULL,
  decision JSON NOT NULL,
  PRIMARY KEY (source, event_id)
);
CREATE TABLE IF NOT EXISTS absorbed_segments (
  segment VARCHAR PRIMARY KEY,
  absorbed_at TIMESTAMP NOT NULL,
  events BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS triage_models (
  model_id VARCHAR PRIMARY KEY,
  created_at TIMESTAMP NOT NULL,
  card JSON NOT NULL,
  files JSON NOT NULL,
  active BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS schemes (
  alert_id VARCHAR PRIMARY KEY,
  scheme_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS case_outcomes (
  account VARCHAR NOT NULL,
  outcome VARCHAR NOT NULL,
  ts TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_scores (
  alert_id VARCHAR NOT NULL,
  model_id VARCHAR NOT NULL,
  priority DOUBLE NOT NULL,
  explanation VARCHAR NOT NULL,
  contributions JSON NOT NULL,
  scored_at TIMESTAMP NOT NULL,
  PRIMARY KEY (alert_id, model_id)
);
"""

assert DECIMAL_SQL in SCHEMA
# Columns a store made by an older Flagstone lacks, added when it is opened for writing. (Its
# clear ``quarantine.raw`` is sealed and dropped by the next ingest, which has the key.)
ADDED_COLUMNS = (
    ("quarantine", "parsed", "JSON"),
    ("quarantine", "raw_nonce", "BLOB"),
    ("quarantine", "raw_sealed", "BLOB"),
    ("triage_models", "review_sample", "DOUBLE"),
    ("alert_scores", "review_sample", "BOOLEAN"),
)


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store on ``con`` has table ``name`` (a store opened read-only is not upgraded, so
    a table added since it was made may be missing)."""
    found = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ?",
        [name],
    ).fetchall()
    return bool(found)


def resolve_store_path(path: str | Path | None) -> Path:
    """``--store`` wins, then ``$FLAGSTONE_STORE``, then ``./flagstone.duckdb``."""
    return Path(path or os.environ.get(STORE_ENV) or DEFAULT_STORE)


class Store:
    """A Flagstone event store in one DuckDB file."""

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False, create: bool = True) -> None:
        self.path = resolve_store_path(path)
        if (read_only or not create) and not self.path.exists():
            raise StoreError(f"{self.path}: no such store; run `flagstone ingest` first")
        owner_only_umask()  # DuckDB makes the WAL and temporary files later, with the umask
        for note in tighten_store(self.path):
            print(f"flagstone: {note}", file=sys.stderr, flush=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: cannot open store: {exc}") from exc
        # DuckDB's own bar would interleave with Flagstone's (and fill logs); ours say what runs.
        self.con.execute("SET enable_progress_bar = false")
        if not read_only:
            self.con.execute(SCHEMA)
            self._add_columns()

    def _add_columns(self) -> None:
        have = set(
            self.con.execute(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = 'main'"
            ).fetchall()
        )
        for table, column, sql_type in ADDED_COLUMNS:
            if (table, column) not in have:
                self.con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing: commit on success, roll back on any exception."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def replace_rows(self, table: str, rows: pa.Table) -> None:
        """Replace every row of ``table`` with ``rows`` (its columns, in order), in one transaction."""
        view = f"new_{table}"
        with self.transaction() as con:
            con.execute(f"DELETE FROM {table}")
            con.register(view, rows)
            try:
                con.execute(f"INSERT INTO {table} SELECT {', '.join(rows.column_names)} FROM {view}")
            finally:
                con.unregister(view)

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        """The one value a query returns (fetching it whole, so no result is left open)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    def next_id(self, table: str, column: str) -> int:
        return int(self.scalar(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}"))
