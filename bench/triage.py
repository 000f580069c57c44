"""Measure alert triage across data sets: train on one labelled set, order the other's queue.

For each AMLGentex set the transactions are ingested without their labels, the graph pack is
scanned, and every alert gets its features and (from the labels) whether it is true and which
patterns it finds alone (half a pattern's laundering transactions in one alert's evidence). A
model trained on set A then orders set B's queue, and the other way round. Printed per direction:

- review work saved: the share of all alerts read, in priority order, when the pack's own pattern
  recall is reached (every pattern some alert finds has been found); goal <= 0.5;
- precision in the top 10 % of the queue, against the pack's precision;
- training time and scoring throughput (alerts/s).

    .venv/bin/python bench/triage.py [--a ../shared/data/amlgentex-dev] [--b ../shared/data/amlgentex-dev-seed1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from flagstone.evaluate import CURRENT_ALERTS_SQL, AlertTruth, alert_truth, load_labels
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store
from flagstone.triage.features import FEATURES, feature_table
from flagstone.triage.measure import queue_measures
from flagstone.triage.model import train

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
TRANSACTIONS = "transactions_labelled.parquet"


@dataclass
class Prepared:
    name: str
    features: Any  # pyarrow.Table, one row per alert
    truth: dict[str, AlertTruth]
    alerts: int


def prepare(data: Path, rules_path: Path, work: Path) -> Prepared:
    """Ingest a labelled set without its labels, scan, and compute features and truth per alert."""
    work.mkdir(parents=True)
    export, labels_csv = work / "transactions.parquet", work / "patterns.csv"
    source = data / TRANSACTIONS
    # The export without its labels: neither rules nor features can see them.
    duckdb.sql(
        f"COPY (SELECT tx_id, tx_date, src, dst, is_a2a, channel, amount, bankOrig, bankDest FROM '{source}') "
        f"TO '{export}' (FORMAT parquet)"
    )
    duckdb.sql(
        f"COPY (SELECT pattern_id, typology, 'amlgentex' AS source, CAST(tx_id AS VARCHAR) AS event_id "
        f"FROM '{source}' WHERE is_laundering) TO '{labels_csv}' (HEADER)"
    )
    with Store(work / "store.duckdb") as store:
        ingest_file(store, export, REPO / "mappings" / "amlgentex.yaml", progress=False)
        scan_store(store, load_rules([rules_path]), progress=False)
        t = time.perf_counter()
        features = feature_table(store.con)
        took = time.perf_counter() - t
        truth = alert_truth(store.con, CURRENT_ALERTS_SQL, load_labels(labels_csv))
    print(f"{data.name}: {features.num_rows:,} alerts, features in {took:.1f} s")
    return Prepared(data.name, features, truth, features.num_rows)


def direction(train_on: Prepared, measure_on: Prepared, seed: int) -> None:
    labels = [int(train_on.truth[a].true) for a in train_on.features.column("alert_id").to_pylist()]
    t = time.perf_counter()
    model = train(train_on.features, labels, descriptions={f.name: f.sentence for f in FEATURES}, seed=seed)
    trained = time.perf_counter() - t
    t = time.perf_counter()
    scores = model.score(measure_on.features)
    scored = time.perf_counter() - t
    m = queue_measures(list(scores.alert_ids), [float(p) for p in scores.priority], measure_on.truth)
    print(f"train {train_on.name} -> measure {measure_on.name}:")
    for line in m.lines():
        print(f"  {line}")
    print(f"  training {trained:.1f} s; scoring {m.alerts / scored:,.0f} alerts/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, default=DATA / "amlgentex-dev")
    ap.add_argument("--b", type=Path, default=DATA / "amlgentex-dev-seed1")
    ap.add_argument("--rules", type=Path, default=REPO / "packs" / "aml-graph")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{len(FEATURES)} features")
    work = Path(tempfile.mkdtemp(prefix="flagstone-triage-"))
    try:
        a = prepare(args.a, args.rules, work / "a")
        b = prepare(args.b, args.rules, work / "b")
        direction(a, b, args.seed)
        direction(b, a, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
