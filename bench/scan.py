"""Benchmark: generate N events (default 10M), ingest them, scan every starter pack.

Prints events/s for ingest and scan, and the ratio of scan time to one ``ORDER BY actor, ts`` of
the same events table, measured in the same run (machines are shared and noisy, so the ratio is
the figure to compare). Peak resident memory is printed after each phase.

With ``--transfers`` it times the whole AML pack including the graph rules (packs/aml and
packs/aml-graph) instead, on random money movements among ``--accounts`` accounts (default 1M):
two transfers (uniform sender and receiver) for every ordinary payment (actor only), a year of
timestamps, log-normal amounts, inserted straight into a store. It prints each rule's time, the
ratio to one sort of the same events and the peak memory.

    python bench/scan.py                 # 10M events
    python bench/scan.py --events 1000000 --keep /tmp/bench
    python bench/scan.py --transfers     # 10M transfers and payments among 1M accounts
    python bench/scan.py --transfers --events 2000000 --accounts 200000
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

from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
PACKS = [REPO / "packs" / p for p in ("aml", "precursors", "transit", "pep")]
AML_PACKS = [REPO / "packs" / p for p in ("aml", "aml-graph")]
YEAR_US = 365 * 86_400 * 1_000_000
# Reference tables first: events look categories up in the catalogue.


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_sort(store: Store, columns: str) -> float:
    """Seconds for one materialised ``ORDER BY actor, ts`` of the events table."""
    t = time.perf_counter()
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE bench_sorted AS SELECT {columns} FROM events ORDER BY actor, ts")
    elapsed = time.perf_counter() - t
    store.con.execute("DROP TABLE bench_sorted")
    return elapsed


def money_movements(n: int, accounts: int, seed: int) -> pa.Table:
    """``n`` events: two transfers between random accounts for every payment by a random account."""
    rng = np.random.default_rng(seed)
    is_transfer = rng.random(n) < 2 / 3
    actor = np.char.add("a", rng.integers(0, accounts, n).astype(str))
    other = np.char.add("a", rng.integers(0, accounts, n).astype(str))
    ts = np.datetime64("2024-01-01", "us") + np.sort(rng.integers(0, YEAR_US, n)).astype("timedelta64[us]")
    return pa.table(
        {
            "event_id": pa.array(np.arange(n).astype(str)),
            "ts": pa.array(ts),
            "kind": pa.array(np.where(is_transfer, "transfer", "payment")),
            "actor": pa.array(actor),
            "counterparty": pa.array(other, mask=~is_transfer),
            "cents": pa.array(np.round(rng.lognormal(8, 1, n)).astype(np.int64)),
        }
    )


def transfers_run(args: argparse.Namespace, store_path: Path) -> None:
    """The AML packs, graph rules included, on transfers and payments inserted straight into a store."""
    with Store(store_path) as store:
        t = time.perf_counter()
        store.con.register("generated", money_movements(args.events, args.accounts, args.seed))
        store.con.execute(
            "INSERT INTO events (event_id, source, ts, kind, actor, counterparty, amount, currency, batch_id) "
            "SELECT event_id, 'bench', ts, kind, actor, counterparty, cents / 100, 'EUR', 1 FROM generated"
        )
        store.con.unregister("generated")
        n = int(store.scalar("SELECT count(*) FROM events"))
        transfers = int(store.scalar("SELECT count(*) FROM events WHERE kind = 'transfer'"))
        print(
            f"insert: {n:,} events ({transfers:,} transfers, {n - transfers:,} payments) among "
            f"{args.accounts:,} accounts in {time.perf_counter() - t:.1f}s; peak RSS {peak_mib():,.0f} MiB"
        )

        sort_s = timed_sort(store, "*")
        print(f"sort: SELECT * ... ORDER BY actor, ts of {n:,} events in {sort_s:.2f}s")
        rules = load_rules(AML_PACKS)
        t = time.perf_counter()
        scan = scan_store(store, rules, progress=False)
        scan_s = time.perf_counter() - t
        for line in scan.summary_lines():
            print(f"  {line}")
        print(f"scan: {len(rules)} rules (aml + aml-graph) in {scan_s:.1f}s; peak RSS {peak_mib():,.0f} MiB")
        print(f"ratio scan / sort = {scan_s / sort_s:.2f} (goal <= 10)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--transfers", action="store_true", help="time the AML packs with graph rules on transfers")
    ap.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the --transfers run")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="flagstone-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    store_path = work / "bench.duckdb"
    store_path.unlink(missing_ok=True)
    try:
        if args.transfers:
            transfers_run(args, store_path)
            return
        t = time.perf_counter()
        info = generate_demo(data, events=args.events, seed=args.seed, progress=False)
        print(f"generate: {args.events:,} events in {time.perf_counter() - t:.1f}s; peak RSS {peak_mib():,.0f} MiB")

        with Store(store_path) as store:
            t = time.perf_counter()
            for path, mapping in info.ingest_order():
                result = ingest_file(store, path, mapping, progress=False)
                print(f"  {result.summary()}")
            ingest_s = time.perf_counter() - t
            n = int(store.scalar("SELECT count(*) FROM events"))
            print(
                f"ingest: {n:,} events in {ingest_s:.1f}s = {n / ingest_s:,.0f} events/s; "
                f"peak RSS {peak_mib():,.0f} MiB"
            )

            sort_s = timed_sort(store, "*")
            print(f"sort: SELECT * ... ORDER BY actor, ts of {n:,} events in {sort_s:.2f}s")
            # A stricter yardstick too: sorting only the columns a rule needs to order a group.
            keys_s = timed_sort(store, "actor, ts, event_id, source")
            print(f"sort: SELECT actor, ts, event_id, source ... ORDER BY actor, ts in {keys_s:.2f}s")

            rules = load_rules(PACKS)
            t = time.perf_counter()
            scan = scan_store(store, rules, progress=False)
            scan_s = time.perf_counter() - t
            for line in scan.summary_lines():
                print(f"  {line}")
            print(
                f"scan: {len(rules)} rules over {n:,} events in {scan_s:.1f}s = {n / scan_s:,.0f} events/s; "
                f"peak RSS {peak_mib():,.0f} MiB"
            )
            print(f"ratio scan / sort = {scan_s / sort_s:.2f} (goal <= 3)")
            print(f"ratio scan / key-only sort = {scan_s / keys_s:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
