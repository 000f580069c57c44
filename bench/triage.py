"""Measure alert triage across data sets: train on one labelled set, order the other's queue.

For each AMLGentex set the transactions are ingested without their labels, the graph pack is
scanned, and every alert gets its features and (from the labels) whether it is true and which
patterns it finds alone (half a pattern's laundering transactions in one alert's evidence). A
model trained on set A then orders set B's queue, and the other way round. Printed per direction:

- review work saved: the share of all alerts read, in priority order, when the pack's own pattern
  recall is reached (every pattern some alert finds has been found); goal <= 0.5;
- precision in the top 10 % of the queue, against the pack's precision;
- training time and scoring throughput (alerts/s);
- recall at a fixed budget: a detector model (``kind: model``, accounts per 30-day window) trained
  on set A raises alerts on set B at priority >= 0.3; the pack's alerts (ordered by the triage
  model) and the detector's are read together in priority order, as many as the pack raises
  alone; the share of all labelled patterns found (one alert's evidence holds half a pattern);
  goal >= 0.95. Also: the most any detector window could add (every candidate read).

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
from amlgentex import unlabelled  # bench/ is the script's folder, so on the path

from flagstone.engines.duckdb import DuckDBEngine
from flagstone.evaluate import CURRENT_ALERTS_SQL, AlertTruth, alert_truth, load_labels
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store
from flagstone.triage.detector import candidate_table, train_detector
from flagstone.triage.features import FEATURES, MODEL_FEATURES, feature_table
from flagstone.triage.history import Labelled
from flagstone.triage.history import train_on as train_on_history
from flagstone.triage.measure import queue_measures

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
# A month holds more of a scheme than a week does (on both AMLGentex sets every candidate window
# of 30 days could add at most 196/210 and 70/70 patterns, against 194 and 70 for 7 days);
# 0.3 reads as "three in ten such windows are laundering", calibrated on the training set.
DETECTOR_WINDOW = "30d"
DETECTOR_THRESHOLD = 0.3


@dataclass
class Prepared:
    name: str
    features: Any  # pyarrow.Table, one row per alert
    truth: dict[str, AlertTruth]
    alerts: int
    store: Path
    labels: Path


def prepare(data: Path, rules_path: Path, work: Path) -> Prepared:
    """Ingest a labelled set without its labels, scan, and compute features and truth per alert."""
    work.mkdir(parents=True)
    export, labels_csv = unlabelled(data, work)
    with Store(work / "store.duckdb") as store:
        ingest_file(store, export, REPO / "mappings" / "amlgentex.yaml", progress=False)
        scan_store(store, load_rules([rules_path]), progress=False)
        t = time.perf_counter()
        features = feature_table(store.con)
        took = time.perf_counter() - t
        truth = alert_truth(store.con, CURRENT_ALERTS_SQL, load_labels(labels_csv))
    print(f"{data.name}: {features.num_rows:,} alerts, features in {took:.1f} s")
    return Prepared(data.name, features, truth, features.num_rows, work / "store.duckdb", labels_csv)


def direction(train_on: Prepared, measure_on: Prepared, seed: int) -> None:
    t = time.perf_counter()
    model = train_on_history(Labelled(train_on.features, train_on.truth), label_source=train_on.name, seed=seed)
    trained = time.perf_counter() - t
    t = time.perf_counter()
    scores = model.score(measure_on.features)
    scored = time.perf_counter() - t
    m = queue_measures(list(scores.alert_ids), [float(p) for p in scores.priority], measure_on.truth)
    print(f"train {train_on.name} -> measure {measure_on.name}:")
    for line in m.lines():
        print(f"  {line}")
    print(f"  training {trained:.1f} s; scoring {m.alerts / scored:,.0f} alerts/s")
    budget_recall(train_on, measure_on, {a: float(p) for a, p in zip(scores.alert_ids, scores.priority, strict=True)})


def patterns_found(labels: Path, evidence: list[list[tuple[str, str]]]) -> list[set[str]]:
    """Per evidence list, the patterns it holds at least half of."""
    rows = duckdb.sql(f"SELECT pattern_id, source, event_id FROM read_csv('{labels}', all_varchar = true)").fetchall()
    size: dict[str, int] = {}
    of: dict[tuple[str, str], str] = {}
    for p, src, eid in rows:
        size[p] = size.get(p, 0) + 1
        of[(src, eid)] = p
    out = []
    for keys in evidence:
        held: dict[str, int] = {}
        for k in keys:
            if k in of:
                held[of[k]] = held.get(of[k], 0) + 1
        out.append({p for p, n in held.items() if 2 * n >= size[p]})
    return out


def budget_recall(train_on: Prepared, measure_on: Prepared, pack_priority: dict[str, float]) -> None:
    with Store(train_on.store) as st:
        t = time.perf_counter()
        detector, _ = train_detector(st.con, train_on.labels, DETECTOR_WINDOW)
        took = time.perf_counter() - t
    folder = train_on.store.parent / "detector"
    detector.save(folder)
    rule_file = train_on.store.parent / "detector.yaml"
    rule_file.write_text(
        "id: bench.detector\nversion: 1\ntitle: detector\nseverity: medium\nkind: model\n"
        f"model: {folder}\nthreshold: {DETECTOR_THRESHOLD}\n"
    )
    rule = load_rules([rule_file]).rules[0]
    with Store(measure_on.store, read_only=True) as st:
        t = time.perf_counter()
        findings = DuckDBEngine(st.con).run(rule)
        detect_s = time.perf_counter() - t
        candidates = candidate_table(st.con, rule.window_us)  # type: ignore[attr-defined]
    total = len({p for (p,) in duckdb.sql(f"SELECT pattern_id FROM read_csv('{measure_on.labels}')").fetchall()})
    pack = [(p, set(measure_on.truth[a].found)) for a, p in pack_priority.items()]
    found_det = patterns_found(measure_on.labels, [list(f.evidence) for f in findings])
    det = [(float(f.values_dict["priority"]), s) for f, s in zip(findings, found_det, strict=True)]  # type: ignore[arg-type]
    queue = sorted(pack + det, key=lambda x: -x[0])[: len(pack)]
    within: set[str] = set().union(*(s for _, s in queue))
    pack_all: set[str] = set().union(*(s for _, s in pack))
    keys = zip(
        candidates.column("evidence_sources").to_pylist(), candidates.column("evidence").to_pylist(), strict=True
    )
    every = set().union(*patterns_found(measure_on.labels, [list(zip(a, b, strict=True)) for a, b in keys]))
    print(
        f"  detector ({DETECTOR_WINDOW} windows, trained in {took:.1f} s; {len(findings):,} alerts at priority >= "
        f"{DETECTOR_THRESHOLD} in {detect_s:.1f} s): reading {len(pack):,} alerts (the pack's count) of pack + "
        f"detector in priority order finds {len(within)}/{total} = {len(within) / total:.2f} of all patterns "
        f"(goal >= 0.95); the pack alone {len(pack_all)}/{total} = {len(pack_all) / total:.2f}; pack + every "
        f"detector window at most {len(pack_all | every)}/{total} = {len(pack_all | every) / total:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, default=DATA / "amlgentex-dev")
    ap.add_argument("--b", type=Path, default=DATA / "amlgentex-dev-seed1")
    ap.add_argument("--rules", type=Path, default=REPO / "packs" / "aml-graph")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{len(FEATURES)} features computed, {len(MODEL_FEATURES)} of them model inputs")
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
