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
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

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

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def closed_segments(self) -> list[Path]:
        current = self.current
        return [p for p in self.segments() if p != current]

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry and wait until it is on disk."""
        if self._file is None:
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
        if self._file is not None:
            self._file.close()
            self._file = None
            self.current = None


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """The segment's entries; a torn last line (a crash during its write) was never acknowledged."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def absorb(store: Store, con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[str, str]]:
    """Move one closed segment into the store, exactly once; returns the event keys it held."""
    name = path.name
    entries = list(read_segment(path))
    events = [e for entry in entries for e in entry["events"]]
    con.execute("BEGIN TRANSACTION")
    try:
        done = con.execute("SELECT 1 FROM absorbed_segments WHERE segment = ?", [name]).fetchall()
        if not done:
            _insert(con, entries, events)
            for entry in entries:
                if entry["alerts"]:
                    insert_alerts(store, [_alert(row) for row in entry["alerts"]], con=con)
                for row in entry["updates"]:
                    _update_alert(con, _alert(row))
            con.execute(
                "INSERT INTO absorbed_segments VALUES (?, ?, ?)",
                [name, datetime.now(UTC).replace(tzinfo=None), len(events)],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    path.unlink()
    return [(e["source"], e["event_id"]) for e in events]


def _insert(con: duckdb.DuckDBPyConnection, entries: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    if events:
        # Text columns; DuckDB casts them to the store's types (exact decimals, timestamps) on insert.
        new_events = pa.table(  # noqa: F841 - read by the SQL below (replacement scan)
            {c: pa.array([_text(e.get(c)) for e in events], pa.string()) for c in [*EVENT_COLS, "batch_id"]}
        )
        con.execute(f"INSERT INTO events ({', '.join([*EVENT_COLS, 'batch_id'])}) SELECT * FROM new_events")
        served = [s for entry in entries for s in entry["served"]]
        new_served = pa.table(  # noqa: F841 - read by the SQL below
            {
                "source": [s[0] for s in served],
                "event_id": [s[1] for s in served],
                "received_at": pa.array([datetime.fromisoformat(s[2]) for s in served], pa.timestamp("us")),
                "content_hash": [s[3] for s in served],
                "decision": [s[4] for s in served],
            }
        )
        con.execute("INSERT INTO served SELECT * FROM new_served")
        counts: dict[int, int] = {}
        for e in events:
            counts[e["batch_id"]] = counts.get(e["batch_id"], 0) + 1
        for batch_id, n in counts.items():
            con.execute(
                "UPDATE ingest_batches SET read = read + ?, loaded = loaded + ?, finished_at = ? WHERE batch_id = ?",
                [n, n, datetime.now(UTC).replace(tzinfo=None), batch_id],
            )
    identities = [i for entry in entries for i in entry["identities"]]
    if identities:
        new_ids = pa.table(  # noqa: F841 - read by the SQL below
            {
                "pseudonym": [i[0] for i in identities],
                "nonce": pa.array([bytes.fromhex(i[1]) for i in identities], pa.binary()),
                "ciphertext": pa.array([bytes.fromhex(i[2]) for i in identities], pa.binary()),
            }
        )
        con.execute("INSERT OR IGNORE INTO identities SELECT * FROM new_ids")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


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

