"""How the store absorbs the intake log (``_log``): each closed segment in one transaction that also
records the segment's name (table ``absorbed_segments``), then the file is deleted. So a crash at
any point loses nothing and doubles nothing: a segment is either absorbed (and recorded) or still
on disk, and a line torn by the crash was never acknowledged.

DuckDB reads a segment itself (``read_json``), told the longest line it may meet (the segment's
size), so any group commit the writer could write is read back. A segment DuckDB cannot read whole
(a line damaged on disk, or written by a faulty version) is absorbed line by line, each line in its
own transaction (recorded as ``<segment>#<line>``), and the lines that still cannot be read are set
aside in ``unreadable/`` for a person to look at: one bad line never holds back the others or the
service's start. A segment written by an earlier run may hold events that `flagstone ingest`
loaded since: those are not stored again.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.alerts import insert_alerts
from flagstone.events import EVENT_COLUMNS
from flagstone.serve._log import INTERNAL_ERRORS
from flagstone.serve._seen import KEYS_SCHEMA, stored_keys
from flagstone.store import Store

UNREADABLE = "unreadable"  # sub-folder of the log for lines that cannot be absorbed
EVENT_COLS = [c.name for c in EVENT_COLUMNS]


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


class Absorber:
    """Absorbs segments into ``store`` through ``con`` (a cursor of the absorbing thread's own).
    ``identities_lock`` is held while identities are inserted: a mapped source's converter stores
    its own, and two transactions inserting one key conflict."""

    def __init__(
        self,
        store: Store,
        con: duckdb.DuckDBPyConnection,
        identities_lock: AbstractContextManager[Any] | threading.Lock = nullcontext(),
    ) -> None:
        self.store = store
        self.con = con
        self.identities_lock = identities_lock

    def absorb(self, path: Path, *, foreign: bool = True) -> Absorbed:
        """Move one closed segment into the store, exactly once; the event keys it stored, and
        what of it had to be set aside. ``foreign``: written by an earlier run (or another
        process), so its events are looked up in the store first; a segment this run wrote holds
        only events it checked as new, and nothing else writes the store while it runs.

        A torn last line is cut off first (it was never acknowledged). Failures of the machine or
        the store (``INTERNAL_ERRORS``) raise, and the segment stays.
        """
        con = self.con
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
                keys = self._file(path, name, len(data), foreign)
            except INTERNAL_ERRORS:
                raise
            except duckdb.Error:
                _record(con, name + "#", 0)  # some line is bad: line by line below
            else:
                path.unlink()
                return Absorbed(keys)
        done = {
            r[0]
            for r in con.execute(
                "SELECT segment FROM absorbed_segments WHERE starts_with(segment, ?)", [name + "#"]
            ).fetchall()
        }
        return self._lines(path, data.split(b"\n")[:-1], done, foreign)

    def _lines(self, path: Path, lines: list[bytes], done: set[str], foreign: bool) -> Absorbed:
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
                out.keys += self._file(single, label, len(line) + 1, foreign)
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

    def _file(self, path: Path, label: str, size: int, foreign: bool) -> list[tuple[str, str]]:
        """One transaction: the file's events, decisions and alerts, and ``label`` in
        ``absorbed_segments``; its identities just before, on their own (storing one twice is
        harmless), read outside the lock and inserted under it."""
        con = self.con
        segment = _read_json(path, size)
        new_identities = con.sql(
            f"SELECT DISTINCT ON (i[1]) i[1] AS p, unhex(i[2]) AS n, unhex(i[3]) AS c "
            f"FROM (SELECT unnest(identities) AS i FROM {segment})"
        ).to_arrow_table()
        if new_identities.num_rows:
            with self.identities_lock:
                con.execute("INSERT OR IGNORE INTO identities SELECT p, n, c FROM new_identities")
        con.execute("BEGIN TRANSACTION")
        try:
            keys = _insert(con, segment, foreign)
            [(alerts, updates)] = con.execute(
                f"SELECT flatten(list(alerts)), flatten(list(updates)) FROM {segment}"
            ).fetchall()
            if alerts:
                insert_alerts(self.store, [_alert(json.loads(a)) for a in alerts], con=con)
            # An episode's evidence only grows, so the longest update of an alert is its latest.
            for row in sorted((json.loads(u) for u in updates or []), key=lambda r: len(r["evidence"])):
                _update_alert(con, _alert(row))
            _record(con, label, len(keys))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return keys


def absorb(store: Store, con: duckdb.DuckDBPyConnection, path: Path) -> Absorbed:
    """One segment of unknown origin (``Absorber.absorb``)."""
    return Absorber(store, con).absorb(path)


def _record(con: duckdb.DuckDBPyConnection, label: str, events: int) -> None:
    con.execute(
        "INSERT INTO absorbed_segments VALUES (?, ?, ?)", [label, datetime.now(UTC).replace(tzinfo=None), events]
    )


def _set_aside_file(path: Path, reason: str) -> SetAside:
    """A segment that cannot even be read: moved aside whole (if even that fails, it raises)."""
    folder = path.parent / UNREADABLE
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    os.replace(path, target)
    return SetAside(path.name, target, (), 0, reason)


_EVENT_STRUCT = ", ".join(f"{c} VARCHAR" for c in EVENT_COLS) + ", batch_id BIGINT"


def _read_json(path: Path, size: int) -> str:
    text = str(path).replace("'", "''")
    # No line is longer than the file: DuckDB's default (16 MB) would refuse a large group commit.
    return (
        f"read_json('{text}', format = 'newline_delimited', maximum_object_size = {max(size, 2**24)}, columns = {{"
        f"'events': 'STRUCT({_EVENT_STRUCT})[]', 'served': 'VARCHAR[][]', 'identities': 'VARCHAR[][]', "
        "'alerts': 'JSON[]', 'updates': 'JSON[]'})"
    )


def _insert(con: duckdb.DuckDBPyConnection, segment: str, foreign: bool) -> list[tuple[str, str]]:
    """Events and decisions of the segment; DuckDB casts the logged text to the store's
    types (exact decimals, timestamps) as it inserts. Events whose key the store holds already
    (looked up for a ``foreign`` segment) are left out; the returned keys are those stored."""
    logged = con.execute(
        f"SELECT e.batch_id, e.source, e.event_id FROM (SELECT unnest(events) AS e FROM {segment})"
    ).fetchall()
    held = stored_keys(con, {(source, event_id) for _, source, event_id in logged}) if foreign else set()
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
