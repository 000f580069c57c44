"""The service's append-only intake log, and how the store absorbs it.

A decision is answered only after the events it accepted are in the log and the log is on disk
(``fsync``), which takes a fraction of a millisecond where a DuckDB transaction takes several.
The log is a folder of segments; the writer starts a new one every second, and the absorber moves
each closed segment into the store in one transaction that also records the segment's name
(table ``absorbed_segments``), then deletes the file. So a crash at any point loses nothing and
doubles nothing: a segment is either absorbed (and recorded) or still on disk, and a record that
was torn by the crash was never acknowledged.

One line is one group commit, however large: DuckDB is told the longest line it may meet (the
segment's size), so any line the writer could write is read back. A segment DuckDB cannot read
whole (a line damaged on disk, or written by a faulty version) is absorbed line by line, each line
in its own transaction (recorded as ``<segment>#<line>``), and the lines that still cannot be read
are set aside in ``unreadable/`` for a person to look at, so one bad line never holds back the
others or the service's start. An event whose (source, event_id) the store already holds (loaded
by ``flagstone ingest`` after the segment was written) is not stored again.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

from flagstone.alerts import insert_alerts
from flagstone.events import EVENT_COLUMNS
from flagstone.serve._seen import KEYS_SCHEMA, stored_keys
from flagstone.store import Store

SUFFIX = ".jsonl"
UNREADABLE = "unreadable"  # sub-folder of the log for lines that cannot be absorbed
EVENT_COLS = [c.name for c in EVENT_COLUMNS]
# Failures of the machine or the store rather than of a segment's content: the segment stays on
# disk and is tried again, never set aside.
INTERNAL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    MemoryError,
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.OutOfMemoryException,
    duckdb.ConnectionException,
    duckdb.InterruptException,
    duckdb.TransactionException,
    duckdb.PermissionException,
)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot log {type(value).__name__}")


def log_folder(store_path: Path) -> Path:
    return Path(f"{store_path}.intake")


def entry_line(entry: dict[str, Any]) -> bytes:
    """One group commit as a log line. The intake checked every value, so this cannot meet NaN or
    a lone surrogate; if it ever did, it raises here, before anything is written."""
    text = json.dumps(entry, default=_json, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


class IntakeLog:
    """Segments named by creation time, so that sorting by name is sorting by age."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.current: Path | None = None
        self._file: IO[bytes] | None = None
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

    def append(self, line: bytes) -> None:
        """Write one entry (a line made by ``entry_line``) and wait until it is on disk."""
        if self._file is None:
            with self._lock:
                self.current = self.folder / f"{time.time_ns():020d}-{secrets.token_hex(3)}{SUFFIX}"
                self._file = self.current.open("ab")
                self._opened = time.monotonic()
        self._file.write(line)
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


@dataclass(frozen=True)
class SetAside:
    """Lines of a segment that could not be absorbed, moved to ``<log>/unreadable/``."""

    segment: str
    moved_to: Path
    lines: tuple[int, ...]  # 1-based line numbers; empty when the file itself could not be read
    kept: int  # events of the segment's other lines, absorbed
    reason: str  # the first line's (or the file's) error


@dataclass
class Absorbed:
    keys: list[tuple[str, str]] = field(default_factory=list)
    set_aside: SetAside | None = None


def absorb(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    identities_lock: AbstractContextManager[Any] = nullcontext(),
) -> Absorbed:
    """Move one closed segment into the store, exactly once; the event keys it held, and what of it
    had to be set aside.

    DuckDB reads the segment itself (``read_json``), so absorbing costs the service's request
    threads almost no Python time. A torn last line is cut off first (it was never acknowledged).
    Failures of the machine or the store (``INTERNAL_ERRORS``) raise, and the segment stays.
    """
    name = path.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Absorbed()
    except OSError as exc:
        return Absorbed(set_aside=_set_aside_file(path, f"cannot read the file: {exc}"))
    whole = data.rfind(b"\n") + 1
    if whole < len(data):
        os.truncate(path, whole)  # a torn last line was never acknowledged: drop it, keep the rest
        data = data[:whole]
    # Point lookups (the primary key's index); ``<name>#`` marks a segment taken line by line.
    marks = {
        r[0]
        for r in con.execute(
            "SELECT segment FROM absorbed_segments WHERE segment IN (?, ?)", [name, name + "#"]
        ).fetchall()
    }
    if name in marks or not data:
        path.unlink()
        return Absorbed()
    if not marks:  # the whole file in one transaction
        try:
            return _whole(store, con, path, len(data), identities_lock)
        except INTERNAL_ERRORS:
            raise
        except duckdb.Error:
            pass  # some line is bad: line by line below
        _record(con, name + "#", 0)
    done = {
        r[0]
        for r in con.execute(
            "SELECT segment FROM absorbed_segments WHERE starts_with(segment, ?)", [name + "#"]
        ).fetchall()
    }
    return _absorb_lines(store, con, path, data.split(b"\n")[:-1], done, identities_lock)


def _whole(
    store: Store, con: duckdb.DuckDBPyConnection, path: Path, size: int, identities_lock: AbstractContextManager[Any]
) -> Absorbed:
    keys = _absorb_file(store, con, path, path.name, size, identities_lock)
    path.unlink()
    return Absorbed(keys)


def _record(con: duckdb.DuckDBPyConnection, label: str, events: int) -> None:
    con.execute(
        "INSERT INTO absorbed_segments VALUES (?, ?, ?)", [label, datetime.now(UTC).replace(tzinfo=None), events]
    )


def _absorb_lines(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    lines: list[bytes],
    done: set[str],
    identities_lock: AbstractContextManager[Any],
) -> Absorbed:
    """Each line on its own; the bad ones are written to ``unreadable/`` before the segment goes."""
    name = path.name
    out = Absorbed()
    bad: list[tuple[int, bytes, str]] = []
    single = path.with_name(name + ".line")  # not *.jsonl: never listed as a segment
    for number, line in enumerate(lines, start=1):
        label = f"{name}#{number}"
        if label in done or not line.strip():
            continue
        single.write_bytes(line + b"\n")
        try:
            out.keys += _absorb_file(store, con, single, label, len(line) + 1, identities_lock)
        except INTERNAL_ERRORS:
            raise
        except duckdb.Error as exc:
            bad.append((number, line, str(exc).splitlines()[0]))
    single.unlink(missing_ok=True)
    if bad:
        folder = path.parent / UNREADABLE
        folder.mkdir(exist_ok=True)
        target = folder / name
        with target.open("wb") as fh:  # written and on disk before the segment is deleted
            fh.write(b"".join(line + b"\n" for _, line, _ in bad))
            fh.flush()
            os.fsync(fh.fileno())
        out.set_aside = SetAside(name, target, tuple(n for n, _, _ in bad), len(out.keys), bad[0][2])
    path.unlink()
    return out


def _set_aside_file(path: Path, reason: str) -> SetAside:
    """A segment that cannot even be read: moved aside whole (if even that fails, it raises)."""
    folder = path.parent / UNREADABLE
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    os.replace(path, target)
    return SetAside(path.name, target, (), 0, reason)


def _absorb_file(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    label: str,
    size: int,
    identities_lock: AbstractContextManager[Any],
) -> list[tuple[str, str]]:
    """One transaction: the file's events, decisions, identities and alerts, and ``label`` in
    ``absorbed_segments``."""
    segment = _read_json(path, size)
    # Identities first, on their own (storing one twice is harmless) and under the lock the writer
    # holds while a mapped source stores its own: two transactions inserting one key conflict.
    with identities_lock:
        con.execute(
            "INSERT OR IGNORE INTO identities SELECT DISTINCT ON (i[1]) i[1], unhex(i[2]), unhex(i[3]) "
            f"FROM (SELECT unnest(identities) AS i FROM {segment})"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        keys = _insert(con, segment)
        [(alerts, updates)] = con.execute(
            f"SELECT flatten(list(alerts)), flatten(list(updates)) FROM {segment}"
        ).fetchall()
        if alerts:
            insert_alerts(store, [_alert(json.loads(a)) for a in alerts], con=con)
        # An episode's evidence only grows, so the longest update of an alert is its latest.
        for row in sorted((json.loads(u) for u in updates or []), key=lambda r: len(r["evidence"])):
            _update_alert(con, _alert(row))
        _record(con, label, len(keys))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return keys


_EVENT_STRUCT = ", ".join(f"{c} VARCHAR" for c in EVENT_COLS) + ", batch_id BIGINT"


def _read_json(path: Path, size: int) -> str:
    text = str(path).replace("'", "''")
    # No line is longer than the file: DuckDB's default (16 MB) would refuse a large group commit.
    return (
        f"read_json('{text}', format = 'newline_delimited', maximum_object_size = {max(size, 2**24)}, columns = {{"
        f"'events': 'STRUCT({_EVENT_STRUCT})[]', 'served': 'VARCHAR[][]', 'identities': 'VARCHAR[][]', "
        "'alerts': 'JSON[]', 'updates': 'JSON[]'})"
    )


def _insert(con: duckdb.DuckDBPyConnection, segment: str) -> list[tuple[str, str]]:
    """Events and decisions of the segment; DuckDB casts the logged text to the store's
    types (exact decimals, timestamps) as it inserts. Events whose key the store holds already are
    left out; the returned keys are those of the events stored."""
    logged = con.execute(
        f"SELECT e.batch_id, e.source, e.event_id FROM (SELECT unnest(events) AS e FROM {segment})"
    ).fetchall()
    held = stored_keys(con, {(source, event_id) for _, source, event_id in logged})
    skip = pa.table({"source": [k[0] for k in held], "event_id": [k[1] for k in held]}, schema=KEYS_SCHEMA)  # noqa: F841
    con.execute(
        f"INSERT INTO events ({', '.join([*EVENT_COLS, 'batch_id'])}) "
        f"SELECT e.* FROM (SELECT unnest(events) AS e FROM {segment}) "
        "WHERE NOT EXISTS (SELECT 1 FROM skip k WHERE k.source = e.source AND k.event_id = e.event_id) "
        "QUALIFY row_number() OVER (PARTITION BY e.source, e.event_id) = 1"  # once, even if logged twice
    )
    con.execute(
        "INSERT OR IGNORE INTO served SELECT s[1], s[2], CAST(s[3] AS TIMESTAMP), s[4], s[5] "
        f"FROM (SELECT unnest(served) AS s FROM {segment})"
    )
    loaded: dict[int, int] = {}
    keys = []
    for batch_id, source, event_id in logged:
        if (source, event_id) not in held:
            held.add((source, event_id))
            loaded[batch_id] = loaded.get(batch_id, 0) + 1
            keys.append((source, event_id))
    for batch_id, n in loaded.items():
        con.execute(
            "UPDATE ingest_batches SET read = read + ?, loaded = loaded + ?, finished_at = ? WHERE batch_id = ?",
            [n, n, datetime.now(UTC).replace(tzinfo=None), batch_id],
        )
    return keys


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
