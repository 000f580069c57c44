"""Which event keys (source, event_id) the store holds, whatever the events' times.

Nearly every event a service sees is new. A Bloom filter of every key the store holds or the
service accepted says so from memory (``SeenKeys``), so the store is asked only about the few keys
it might hold (retries, events loaded by ``flagstone ingest``, and under 1% false alarms). Being
wrong in that direction costs one lookup, never a wrong answer. Ten bits per key, seven hashes.

The lookup itself (``lookup``) goes through an index on ``event_id`` of the events and the served
decisions (``ensure_key_indexes``), so it costs about a millisecond on a store of millions of
events and finds a key whatever its time.
"""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb
import pyarrow as pa

HASHES = 7
BITS_PER_KEY = 10


class SeenKeys:
    def __init__(self, capacity: int) -> None:
        self.bits = max(capacity, 1_000) * BITS_PER_KEY
        self.array = bytearray(self.bits // 8 + 1)

    def _positions(self, source: str, event_id: str) -> list[int]:
        digest = hashlib.blake2b(f"{source}\x1f{event_id}".encode(), digest_size=16).digest()
        h1, h2 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
        return [(h1 + i * h2) % self.bits for i in range(HASHES)]

    def add(self, source: str, event_id: str) -> None:
        for p in self._positions(source, event_id):
            self.array[p >> 3] |= 1 << (p & 7)

    def might_hold(self, source: str, event_id: str) -> bool:
        return all(self.array[p >> 3] >> (p & 7) & 1 for p in self._positions(source, event_id))


KEYS_SCHEMA = pa.schema([("source", pa.string()), ("event_id", pa.string())])
POINT_LOOKUPS = 64  # keys looked up one by one through the event_id index; more are joined in one scan


def stored_keys(con: duckdb.DuckDBPyConnection, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``keys`` the events table holds, whatever their time."""
    return {(r[0], r[1]) for r in lookup(con, "events", ["source", "event_id"], keys)}


def lookup(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], keys: set[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    """``columns`` (the first two being source and event_id) of the rows of ``table`` with these
    keys. A few keys go through the index on ``event_id`` (``ensure_key_indexes``): DuckDB uses an
    index only for a lone equality, so the source is compared here. Many keys (a retried batch) are
    cheaper as one join."""
    if not keys:
        return []
    cols = ", ".join(f'"{c}"' for c in columns)
    if len(keys) <= POINT_LOOKUPS:
        rows = []
        for event_id in {k[1] for k in keys}:
            rows += con.execute(f"SELECT {cols} FROM {table} WHERE event_id = ?", [event_id]).fetchall()
        return [r for r in rows if (r[0], r[1]) in keys]
    wanted = pa.table({"source": [k[0] for k in keys], "event_id": [k[1] for k in keys]}, schema=KEYS_SCHEMA)  # noqa: F841
    return con.execute(f"SELECT {cols} FROM {table} JOIN wanted USING (source, event_id)").fetchall()


def ensure_key_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Indexes that make ``lookup`` fast whatever the time of the events (a few seconds, once, on
    a store of millions of events)."""
    con.execute("CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id)")
    con.execute("CREATE INDEX IF NOT EXISTS served_event_id ON served (event_id)")
