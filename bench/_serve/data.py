"""The events the benchmark posts: the demo's bank and shop events as canonical JSON lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.store import Store

# Event ids are prefixed with their source ("bank:TX...") because the service takes one source and
# ids are unique only within one. Decimals go as strings so that no amount passes through a float.
CANONICAL_SQL = """
COPY (
    SELECT source || ':' || event_id AS event_id,
           CASE WHEN date_trunc('second', ts) = ts THEN strftime(ts, '%Y-%m-%dT%H:%M:%S')
                ELSE strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') END AS ts,
           kind, actor, counterparty, currency, item, category, place, channel,
           amount::VARCHAR AS amount, quantity::VARCHAR AS quantity
    FROM events WHERE source IN ('bank', 'shop')
    ORDER BY events.ts, events.event_id, events.source
) TO '{path}' (FORMAT JSON)
"""


def prepare_events(work: Path, events: int, seed: int) -> Path:
    """The demo's bank and shop events as canonical JSON lines in time order; returns the file."""
    t = time.perf_counter()
    info = generate_demo(work / "demo", events=events, seed=seed, progress=False)
    print(f"generate: {info.events:,} demo events (seed {seed}) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    store_path = work / "demo.duckdb"
    with Store(store_path) as store:
        # Transit taps are not sent; the catalogue gives shop lines their category.
        for path, mapping in info.ingest_order():
            if mapping.stem != "transit":
                ingest_file(store, path, mapping, progress=False)
        out = work / "canonical.jsonl"
        store.con.execute(CANONICAL_SQL.format(path=str(out).replace("'", "''")))
    lines = count_lines(out)
    print(
        f"canonical file: {lines:,} bank + shop events in time order, {out.stat().st_size / 2**20:,.0f} MiB, "
        f"written in {time.perf_counter() - t:.1f} s"
    )
    return out


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def read_lines(path: Path, start: int, count: int) -> list[bytes]:
    """Lines ``start`` to ``start + count`` without their newlines: one JSON event each."""
    with path.open("rb") as fh:
        return [line.rstrip(b"\n") for line in islice(fh, start, start + count)]


def batch_body(lines: Sequence[bytes]) -> bytes:
    """A POST /v1/events body of several events: a JSON array, joined without parsing them."""
    return b"[" + b",".join(lines) + b"]"


def request_bodies(lines: Sequence[bytes], batch: int) -> list[bytes]:
    """One body per request; a single event goes as a bare object, as a client sending one would."""
    return [lines[i] if batch == 1 else batch_body(lines[i : i + batch]) for i in range(0, len(lines), batch)]
