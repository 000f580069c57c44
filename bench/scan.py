"""Benchmark: generate N events (default 10M), ingest them, scan every starter pack.

Prints events/s for ingest and scan, and the ratio of scan time to one ``ORDER BY actor, ts`` of
the same events table, measured in the same run (machines are shared and noisy, so the ratio is
the figure to compare). Peak resident memory is printed after each phase.

    python bench/scan.py                 # 10M events
    python bench/scan.py --events 1000000 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
PACKS = [REPO / "packs" / p for p in ("aml", "precursors", "transit", "pep")]
# Reference tables first: events look categories up in the catalogue.
ORDER = ["catalogue", "entities", "bank", "shop", "transit"]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_sort(store: Store, columns: str) -> float:
    """Seconds for one materialised ``ORDER BY actor, ts`` of the events table."""
    t = time.perf_counter()
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE bench_sorted AS SELECT {columns} FROM events ORDER BY actor, ts")
    elapsed = time.perf_counter() - t
    store.con.execute("DROP TABLE bench_sorted")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="flagstone-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    store_path = work / "bench.duckdb"
    store_path.unlink(missing_ok=True)
    try:
        t = time.perf_counter()
        generate_demo(data, events=args.events, seed=args.seed, progress=False)
        print(f"generate: {args.events:,} events in {time.perf_counter() - t:.1f}s; peak RSS {peak_mib():,.0f} MiB")

        with Store(store_path) as store:
            t = time.perf_counter()
            for name in ORDER:
                (path,) = [p for p in data.iterdir() if p.stem == name and p.suffix != ".yaml"]
                result = ingest_file(store, path, data / f"{name}.yaml", progress=False)
                print(f"  {result.summary()}")
            ingest_s = time.perf_counter() - t
            n = int(store.scalar("SELECT count(*) FROM events"))
            print(f"ingest: {n:,} events in {ingest_s:.1f}s = {n / ingest_s:,.0f} events/s; "
                  f"peak RSS {peak_mib():,.0f} MiB")

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
            print(f"scan: {len(rules)} rules over {n:,} events in {scan_s:.1f}s = {n / scan_s:,.0f} events/s; "
                  f"peak RSS {peak_mib():,.0f} MiB")
            print(f"ratio scan / sort = {scan_s / sort_s:.2f} (goal <= 3)")
            print(f"ratio scan / key-only sort = {scan_s / keys_s:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
