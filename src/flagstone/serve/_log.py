"""The service's append-only intake log, and how the store absorbs it.

A decision is answered only after the events it accepted are in the log and the log is on disk
(``fsync``), which takes a fraction of a millisecond where a DuckDB transaction takes several.
The log is a folder of segments; the writer starts a new one every second, and the absorber moves
each closed segment into the store in one transaction that also records the segment's name
(table ``absorbed_segments``), then deletes the file. So a crash at any point loses nothing and
doubles nothing: a segment is either absorbed (and recorded) or still on disk, and a record that
was torn by the crash was never acknowledged.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb

from flagstone.alerts import insert_alerts
from flagstone.events import EVENT_COLUMNS
from flagstone.store import Store

SUFFIX = ".jsonl"
EVENT_COLS = [c.name for c in EVENT_COLUMNS]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot log {type(value).__name__}")


def log_folder(store_path: Path) -> Path:
    return Path(f"{store_path}.intake")


class IntakeLog:
    """Segments named by creation time, so that sorting by name is sorting by age."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.current: Path | None = None
        self._file: IO[str] | None = None
        self._opened = 0.0
        # Opening or closing a segment and listing the closed ones exclude each other: otherwise the
        # absorber could list a segment the writer has just opened, absorb it, and delete it while
        # the writer still appends to it (acknowledged entries would be lost).
        self._lock = threading.Lock()

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def closed_segments(self) -> list[Path]:
        with self._lock:
            return [p for p in self.segments() if p != self.current]

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry and wait until it is on disk."""
        if self._file is None:
            with self._lock:
                self.current = self.folder / f"{time.time_ns():020d}-{secrets.token_hex(3)}{SUFFIX}"
                self._file = self.current.open("a", encoding="utf-8")
                self._opened = time.monotonic()
        self._file.write(json.dumps(entry, default=_json, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def age(self) -> float:
        return time.monotonic() - self._opened if self._file is not None else 0.0

    def rotate(self) -> None:
        """Close the open segment (it becomes absorbable); the next append starts a new one."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self.current = None


def absorb(store: Store, con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[str, str]]:
    """Move one closed segment into the store, exactly once; returns the event keys it held.

    DuckDB reads the segment itself (``read_json``), so absorbing costs the service's request
    threads almost no Python time. A torn last line is cut off first; anything else DuckDB cannot
    read raises (and the segment stays on disk), so no entry is ever skipped.
    """
    name = path.name
    size = path.stat().st_size
    with path.open("rb") as fh:
        data = fh.read()
    whole = data.rfind(b"\n") + 1
    if whole < size:
        os.truncate(path, whole)  # a torn last line was never acknowledged: drop it, keep the rest
    segment = _read_json(path)
    con.execute("BEGIN TRANSACTION")
    try:
        done = con.execute("SELECT 1 FROM absorbed_segments WHERE segment = ?", [name]).fetchall()
        keys: list[tuple[str, str]] = []
        if not done and whole:
            keys = _insert(con, segment)
            [(alerts, updates)] = con.execute(
                f"SELECT flatten(list(alerts)), flatten(list(updates)) FROM {segment}"
            ).fetchall()
            if alerts:
                insert_alerts(store, [_alert(json.loads(a)) for a in alerts], con=con)
            # An episode's evidence only grows, so the longest update of an alert is its latest.
            for row in sorted((json.loads(u) for u in updates or []), key=lambda r: len(r["evidence"])):
                _update_alert(con, _alert(row))
            con.execute(
                "INSERT INTO absorbed_segments VALUES (?, ?, ?)",
                [name, datetime.now(UTC).replace(tzinfo=None), len(keys)],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    path.unlink()
    return keys


_EVENT_STRUCT = ", ".join(f"{c} VARCHAR" for c in EVENT_COLS) + ", batch_id BIGINT"


def _read_json(path: Path) -> str:
    text = str(path).replace("'", "''")
    return (
        f"read_json('{text}', format = 'newline_delimited', columns = {{"
        f"'events': 'STRUCT({_EVENT_STRUCT})[]', 'served': 'VARCHAR[][]', 'identities': 'VARCHAR[][]', "
        "'alerts': 'JSON[]', 'updates': 'JSON[]'})"
    )


def _insert(con: duckdb.DuckDBPyConnection, segment: str) -> list[tuple[str, str]]:
    """Events, decisions and identities of the segment; DuckDB casts the logged text to the store's
    types (exact decimals, timestamps) as it inserts."""
    con.execute(
        f"INSERT INTO events ({', '.join([*EVENT_COLS, 'batch_id'])}) "
        f"SELECT e.* FROM (SELECT unnest(events) AS e FROM {segment})"
    )
    con.execute(
        "INSERT INTO served SELECT s[1], s[2], CAST(s[3] AS TIMESTAMP), s[4], s[5] "
        f"FROM (SELECT unnest(served) AS s FROM {segment})"
    )
    con.execute(
        "INSERT OR IGNORE INTO identities SELECT DISTINCT ON (i[1]) i[1], unhex(i[2]), unhex(i[3]) "
        f"FROM (SELECT unnest(identities) AS i FROM {segment})"
    )
    counts = con.execute(
        f"SELECT e.batch_id, e.source, e.event_id FROM (SELECT unnest(events) AS e FROM {segment})"
    ).fetchall()
    loaded: dict[int, int] = {}
    for batch_id, _, _ in counts:
        loaded[batch_id] = loaded.get(batch_id, 0) + 1
    for batch_id, n in loaded.items():
        con.execute(
            "UPDATE ingest_batches SET read = read + ?, loaded = loaded + ?, finished_at = ? WHERE batch_id = ?",
            [n, n, datetime.now(UTC).replace(tzinfo=None), batch_id],
        )
    return [(source, event_id) for _, source, event_id in counts]


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "first_ts": datetime.fromisoformat(row["first_ts"]),
        "last_ts": datetime.fromisoformat(row["last_ts"]),
    }


def _update_alert(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """An episode alert whose evidence grew: the stored row follows (same id, new evidence)."""
    con.execute(
        'UPDATE alerts SET first_ts = ?, evidence_sources = ?, evidence = ?, "values" = ?, reason = ? '
        "WHERE alert_id = ?",
        [row["first_ts"], row["evidence_sources"], row["evidence"], row["values"], row["reason"], row["alert_id"]],
    )

