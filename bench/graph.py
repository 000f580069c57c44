"""Time packs/aml-graph on synthetic transfers against one ``ORDER BY actor, ts`` of the same events.

Transfers among accounts are drawn with numpy (uniform senders and receivers, a year of
timestamps, log-normal amounts) and inserted straight into a store; then the
pack runs on the DuckDB engine and the script prints the time ratio and the peak memory.

    .venv/bin/python bench/graph.py [--events 10000000 --accounts 1000000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
YEAR_US = 365 * 86_400 * 1_000_000


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def transfers(n: int, accounts: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    actor = rng.integers(0, accounts, n)
    counterparty = rng.integers(0, accounts, n)
    ts = np.datetime64("2024-01-01", "us") + np.sort(rng.integers(0, YEAR_US, n)).astype("timedelta64[us]")
    cents = np.round(rng.lognormal(8, 1, n)).astype(np.int64)
    return pa.table(
        {
            "event_id": pa.array(np.arange(n).astype(str)),
            "ts": pa.array(ts),
            "actor": pa.array(np.char.add("a", actor.astype(str))),
            "counterparty": pa.array(np.char.add("a", counterparty.astype(str))),
            "cents": pa.array(cents),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rules", type=Path, default=REPO / "packs" / "aml-graph")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flagstone-graph-"))
    try:
        with Store(work / "graph.duckdb") as store:
            t = time.perf_counter()
            table = transfers(args.events, args.accounts, args.seed)
            store.con.register("generated", table)
            store.con.execute(
                "INSERT INTO events (event_id, source, ts, kind, actor, counterparty, amount, currency, batch_id) "
                "SELECT event_id, 'bench', ts, 'transfer', actor, counterparty, cents / 100, 'EUR', 1 FROM generated"
            )
            store.con.unregister("generated")
            del table
            n = int(store.scalar("SELECT count(*) FROM events"))
            print(f"insert: {n:,} transfers among {args.accounts:,} accounts in {time.perf_counter() - t:.1f}s")

            t = time.perf_counter()
            store.con.execute("CREATE TEMP TABLE bench_sorted AS SELECT * FROM events ORDER BY actor, ts")
            sort_s = time.perf_counter() - t
            store.con.execute("DROP TABLE bench_sorted")
            print(f"sort: SELECT * ... ORDER BY actor, ts in {sort_s:.2f}s")

            rules = load_rules([args.rules])
            t = time.perf_counter()
            scan = scan_store(store, rules, progress=False)
            scan_s = time.perf_counter() - t
            for line in scan.summary_lines():
                print(f"  {line}")
            print(f"scan: {len(rules)} graph rules in {scan_s:.1f}s; peak RSS {peak_mib():,.0f} MiB")
            print(f"ratio scan / sort = {scan_s / sort_s:.2f} (goal <= 10)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
