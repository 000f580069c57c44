"""How long the triage features take (issue 15): on the AMLGentex development set after a scan of
packs/aml-graph (about 2,000 alerts over 680k transactions), and on an existing store such as the
demo's (`make demo`: demo-out/flagstone.duckdb, 5M events, 1,343 alerts), opened read-only.

    .venv/bin/python bench/triage_features.py [--data ../shared/data/amlgentex-dev] [--store demo-out/flagstone.duckdb]

Prints the ingest and scan times for context and the feature time for each data set.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store
from flagstone.triage.features import FEATURE_NAMES, feature_table

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "amlgentex-dev"


def timed_features(con: duckdb.DuckDBPyConnection, label: str) -> pa.Table:
    events = int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    alerts = int(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0])
    t = time.perf_counter()
    table = feature_table(con)
    seconds = time.perf_counter() - t
    print(f"{label}: features of {alerts:,} alerts over {events:,} events in {seconds:.2f}s")
    unknown = {n: table[n].null_count for n in FEATURE_NAMES if table[n].null_count}
    print(f"  NULL counts: {unknown or 'none'}")
    print(
        "  medians: "
        + ", ".join(f"{n}={_median(table[n]):.3g}" for n in FEATURE_NAMES if table[n].null_count < len(table))
    )
    return table


def _median(col: pa.ChunkedArray) -> float:
    return float(pc.approximate_median(col).as_py() or 0.0)


def amlgentex(data: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="flagstone-triage-"))
    try:
        export = work / "transactions.parquet"
        source = data / "transactions_labelled.parquet"
        # Without the labels, as bench/amlgentex.py ingests it.
        duckdb.sql(
            f"COPY (SELECT tx_id, tx_date, src, dst, is_a2a, channel, amount, bankOrig, bankDest FROM '{source}') "
            f"TO '{export}' (FORMAT parquet)"
        )
        with Store(work / "store.duckdb") as store:
            t = time.perf_counter()
            ingest_file(store, export, REPO / "mappings" / "amlgentex.yaml", progress=False)
            print(f"amlgentex: ingest {time.perf_counter() - t:.1f}s")
            t = time.perf_counter()
            scan_store(store, load_rules([REPO / "packs" / "aml-graph"]), progress=False)
            print(f"amlgentex: scan of packs/aml-graph {time.perf_counter() - t:.1f}s")
            timed_features(store.con, "amlgentex")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the AMLGentex set")
    ap.add_argument("--no-amlgentex", action="store_true", help="only the --store")
    ap.add_argument("--store", type=Path, default=None, help="an existing store, e.g. demo-out/flagstone.duckdb")
    args = ap.parse_args()
    if not args.no_amlgentex:
        amlgentex(args.data)
    if args.store is not None:
        with Store(args.store, read_only=True) as store:
            timed_features(store.con, str(args.store))


if __name__ == "__main__":
    main()
