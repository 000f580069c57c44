"""Benchmark: the same rules on DuckDB and on Spark local[1] and local[2], with a cluster estimate.

Generates demo events (the generator of ``flagstone demo`` and bench/scan.py) at two sizes, N/4
and N (default N = 1M); for each, ingests them into a temporary DuckDB store, times the DuckDB
scan of every pack rule Spark runs (rules it cannot run are listed as skipped), exports the store
to Parquet and times the same rules on Spark ``local[1]`` and ``local[2]``. Each Spark run is a
fresh process with its own JVM, so none profits from another's warm JIT; the session start (JVM
and SparkContext) is printed but not counted. The alerts must be the same on all engines (ids,
and the whole rows apart from the scan id).

It prints each engine's time, the ratio Spark / DuckDB and Spark's speed-up from 1 to 2 cores at
both sizes. At these sizes much of Spark's time is a fixed cost per rule (planning, jobs, file
listing), so the two sizes are used to split each Spark time into fixed + per-event parts, and the
speed-up of the per-event part is printed too. The estimate for ``--target`` events (default 1
billion) on ``--nodes`` nodes with ``--cores-per-node`` cores is the fixed part plus the per-event
part of one core divided by the core count and the measured parallel efficiency: an
extrapolation, not a measurement.

    python bench/spark.py                     # 250k and 1M events
    python bench/spark.py --events 4000000 --keep /tmp/bench-spark
    python bench/spark.py --nodes 20 --cores-per-node 16 --target 1000000000
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flagstone.alerts import alert_rows
from flagstone.engines import DuckDBEngine
from flagstone.engines.spark import SparkEngine
from flagstone.errors import UnsupportedError
from flagstone.export import ENTITIES_FILE, EVENTS_DIR, export_parquet
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import ir, load_rules
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
PACKS = sorted(p for p in (REPO / "packs").iterdir() if p.is_dir())
# Reference tables first: events look categories up in the catalogue.


def split_rules() -> tuple[list[ir.Rule], list[str]]:
    """The pack rules Spark runs, and one UnsupportedError message for each rule it does not."""
    engine = SparkEngine(None)
    supported, skipped = [], []
    for rule in load_rules(PACKS):
        try:
            engine.check_supported(rule)
        except UnsupportedError as exc:
            skipped.append(str(exc))
            continue
        supported.append(rule)
    return supported, skipped


def comparable(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Alert rows by alert id, without the scan id (which differs between runs by design)."""
    return {r["alert_id"]: tuple((k, v) for k, v in sorted(r.items()) if k != "scan_id") for r in rows}


def spark_worker(cores: int, export: Path, result: Path, shuffle_partitions: int) -> None:
    """One Spark run in this (fresh) process; the figures and rows are pickled to ``result``."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode must not look up the host name
    from pyspark.sql import SparkSession

    from flagstone.engines.spark.scan import scan_parquet

    rules, _ = split_rules()
    t = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(f"flagstone-bench-{cores}")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t
    try:
        scan = scan_parquet(spark, export / EVENTS_DIR, rules, entities=export / ENTITIES_FILE)
    finally:
        spark.stop()
    with result.open("wb") as f:
        per_rule = [(o.rule.meta.id, o.seconds) for o in scan.outcomes]
        pickle.dump({"start_s": start_s, "scan_s": scan.seconds, "rows": scan.rows, "per_rule": per_rule}, f)


def run_spark(cores: int, export: Path, work: Path, shuffle_partitions: int) -> dict[str, Any]:
    result = work / f"spark-{cores}.pickle"
    cmd = [sys.executable, __file__, "--worker", str(cores), "--export", str(export), "--result", str(result)]
    subprocess.run([*cmd, "--shuffle-partitions", str(shuffle_partitions)], check=True)
    with result.open("rb") as f:
        out: dict[str, Any] = pickle.load(f)
    return out


def duckdb_scan(store: Store, rules: list[ir.Rule]) -> tuple[float, list[dict[str, Any]]]:
    """Seconds and alert rows of the rules on DuckDB (found, not stored: Spark's run stores nothing either)."""
    engine = DuckDBEngine(store.con)
    t = time.perf_counter()
    rows = [row for rule in rules for row in alert_rows(rule, engine.run(rule), 0)]
    return time.perf_counter() - t, rows


def prepare(work: Path, events: int, seed: int, rules: list[ir.Rule]) -> dict[str, Any]:
    """Generate, ingest, scan on DuckDB and export one data set; its figures and alert rows."""
    data, export, store_path = work / f"data-{events}", work / f"parquet-{events}", work / f"bench-{events}.duckdb"
    store_path.unlink(missing_ok=True)
    info = generate_demo(data, events=events, seed=seed, progress=False)
    with Store(store_path) as store:
        for path, mapping in info.ingest_order():
            ingest_file(store, path, mapping, progress=False)
        n = int(store.scalar("SELECT count(*) FROM events"))
        duck_s, duck_rows = duckdb_scan(store, rules)
        export_parquet(store, export, overwrite=True, progress=False)
    print(f"{n:,} events: duckdb {len(rules)} rules in {duck_s:.2f}s, {len(duck_rows):,} alerts; exported")
    return {"n": n, "export": export, "duck_s": duck_s, "duck_rows": duck_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="the larger data set; the smaller has a quarter")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    ap.add_argument("--nodes", type=int, default=20, help="cluster size of the estimate")
    ap.add_argument("--cores-per-node", type=int, default=16, help="executor cores per node of the estimate")
    ap.add_argument("--target", type=int, default=1_000_000_000, help="events of the estimate")
    # Internal: one Spark run in a child process (a fresh JVM).
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--export", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spark_worker(args.worker, args.export, args.result, args.shuffle_partitions)
        return

    rules, skipped = split_rules()
    print(f"rules: {len(rules)} run on every engine; {len(skipped)} skipped (not supported on Spark):")
    for message in skipped:
        print(f"  skipped: {message}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="flagstone-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sets = [prepare(work, size, args.seed, rules) for size in (args.events // 4, args.events)]
        times: dict[tuple[int, int], float] = {}  # (cores, events) -> Spark seconds
        for data in sets:
            n = data["n"]
            expected = comparable(data["duck_rows"])
            for cores in (1, 2):
                run = run_spark(cores, data["export"], work, args.shuffle_partitions)
                times[cores, n] = run["scan_s"]
                got = comparable(run["rows"])
                same = "equal" if got == expected else "DIFFERENT"
                print(
                    f"{n:,} events: spark local[{cores}] session start {run['start_s']:.1f}s (not counted); "
                    f"{len(rules)} rules in {run['scan_s']:.2f}s = {n / run['scan_s']:,.0f} events/s, "
                    f"{len(got):,} alerts, rows {same} to DuckDB's"
                )
                if got != expected:
                    sys.exit(f"alerts differ between DuckDB and Spark local[{cores}] on {n:,} events")
                if data is sets[-1]:
                    slowest = sorted(run["per_rule"], key=lambda r: -r[1])
                    print("  per rule: " + ", ".join(f"{rule_id} {s:.1f}s" for rule_id, s in slowest))
            print(
                f"{n:,} events: ratio spark local[1] / duckdb = {times[1, n] / data['duck_s']:.1f}; "
                f"local[2] / duckdb = {times[2, n] / data['duck_s']:.1f}; "
                f"speed-up 1 -> 2 cores = {times[1, n] / times[2, n]:.2f}"
            )

        # Spark time = a fixed cost per scan (planning, jobs, file listing: a + ...) plus a cost per
        # event; two sizes separate them, so the speed-up of the per-event work is seen on its own.
        small, large = sets[0]["n"], sets[1]["n"]
        per_event = {c: (times[c, large] - times[c, small]) / (large - small) for c in (1, 2)}
        fixed = {c: times[c, large] - per_event[c] * large for c in (1, 2)}
        for c in (1, 2):
            print(f"local[{c}]: fixed {fixed[c]:.1f}s + {per_event[c] * 1e6:.1f}s per million events")
        if min(per_event.values()) <= 0:
            sys.exit("the smaller data set took as long as the larger: the machine was too busy to measure")
        work_speedup = per_event[1] / per_event[2]
        # Capped at 1: a super-linear 1 -> 2 is noise on a shared machine, not something a cluster keeps.
        efficiency = min(work_speedup / 2, 1.0)
        print(f"speed-up of the per-event work 1 -> 2 cores = {work_speedup:.2f} (efficiency {efficiency:.0%})")
        print("load average 1/5/15 min at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

        cores_total = args.nodes * args.cores_per_node
        estimate = fixed[1] + args.target * per_event[1] / (cores_total * efficiency)
        print(
            f"estimate (extrapolation): {args.target:,} events on {args.nodes} nodes x {args.cores_per_node} cores "
            f"= {cores_total} cores: fixed {fixed[1]:.0f}s + {args.target:,} x {per_event[1] * 1e6:.1f}s per million "
            f"/ ({cores_total} x {efficiency:.0%}) = {estimate:,.0f}s = {estimate / 60:.1f} min, plus session start"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
