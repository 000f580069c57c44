"""Triage on demo data: train on one generated demo, order another's queue, and what scoring adds to
a scan.

Two demos are generated with different seeds, ingested and scanned with every shipped pack. A model
trained on the first (its planted labels) orders the second's queue: the share read to find every
true alert, and the precision in the top 10 %. Then the second demo's events are scanned again in
fresh stores, without a model and with the model active (its new alerts scored), three times each:
the ratio of the median scan times is what triage costs a scan (goal <= 1.2).

Recall at a fixed budget: a detector (``kind: model``, 30-day windows, threshold 0.3) trained on the
first demo raises alerts on the second; the packs' alerts (in triage order) and the detector's are
read together in priority order, as many as the packs raise; printed is the share of the planted
suspicious scenarios with an event in the evidence of an alert read, against the packs alone.

    .venv/bin/python bench/triage_demo.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from flagstone.demo import PACKS, find_packs
from flagstone.engines.duckdb import DuckDBEngine
from flagstone.evaluate import CURRENT_ALERTS_SQL, alert_truth, load_labels
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import RuleSet, load_rules
from flagstone.scan import scan_store
from flagstone.store import Store
from flagstone.triage.detector import train_detector
from flagstone.triage.features import feature_table
from flagstone.triage.history import Labelled, train_on
from flagstone.triage.measure import queue_measures
from flagstone.triage.model import TriageModel
from flagstone.triage.registry import activate, register


def ingested(folder: Path, events: int, seed: int) -> tuple[Path, Path]:
    """A store holding a generated demo's events (not scanned), and its labels file."""
    info = generate_demo(folder / "data", events=events, seed=seed, progress=False)
    path = folder / "flagstone.duckdb"
    with Store(path) as st:
        for data, mapping in info.ingest_order():
            ingest_file(st, data, mapping, progress=False)
    return path, info.files["labels"]


def copy(store: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for suffix in ("", ".key"):
        shutil.copy2(f"{store}{suffix}", f"{dest / store.name}{suffix}")
    return dest / store.name


def timed_scan(store: Path, rules: RuleSet, model: TriageModel | None) -> tuple[float, int]:
    with Store(store) as st:
        if model is not None:
            register(st, model)
            activate(st, model.version)
        t = time.perf_counter()
        result = scan_store(st, rules, progress=False)
        return time.perf_counter() - t, result.scored


def budget_recall(train_store: Path, train_labels: Path, store: Path, labels: Path, scores: Any, work: Path) -> None:
    with Store(train_store) as st:
        detector, _ = train_detector(st.con, train_labels, "30d")
    detector.save(work / "detector")
    rule_file = work / "detector.yaml"
    rule_file.write_text(
        "id: bench.detector\nversion: 1\ntitle: detector\nseverity: medium\nkind: model\n"
        f"model: {work / 'detector'}\nthreshold: 0.3\n"
    )
    rule = load_rules([rule_file]).rules[0]
    scenario_of = {
        (src, eid): sid
        for sid, src, eid in duckdb.sql(
            f"SELECT scenario_id, source, event_id FROM read_csv('{labels}', all_varchar = true) "
            "WHERE label = 'suspicious'"
        ).fetchall()
    }
    with Store(store, read_only=True) as st:
        findings = DuckDBEngine(st.con).run(rule)
        evidence = {
            a: list(zip(s, e, strict=True))
            for a, s, e in st.con.execute("SELECT alert_id, evidence_sources, evidence FROM alerts").fetchall()
        }
    pack = [(float(p), evidence[a]) for a, p in zip(scores.alert_ids, scores.priority, strict=True)]
    det = [(float(f.values_dict["priority"]), list(f.evidence)) for f in findings]  # type: ignore[arg-type]

    def found(queue: list[tuple[float, list[tuple[str, str]]]]) -> set[str]:
        return {scenario_of[k] for _, keys in queue for k in keys if k in scenario_of}

    read = sorted(pack + det, key=lambda x: -x[0])[: len(pack)]
    total = len(set(scenario_of.values()))
    print(
        f"  detector: {len(findings)} alerts; reading {len(pack)} alerts of packs + detector in priority order finds "
        f"{len(found(read))}/{total} suspicious scenarios = {len(found(read)) / total:.2f} (packs alone "
        f"{len(found(pack)) / total:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    rules = load_rules([find_packs() / p for p in PACKS])
    work = Path(tempfile.mkdtemp(prefix="flagstone-triage-demo-"))
    try:
        train_store, train_labels = ingested(work / "train", args.events, seed=1)
        measure_store, measure_labels = ingested(work / "measure", args.events, seed=2)
        pristine = copy(measure_store, work / "pristine")  # ingested, not scanned: for the timed scans
        tables = {}
        for name, path, labels in (("train", train_store, train_labels), ("measure", measure_store, measure_labels)):
            with Store(path) as st:
                scan_store(st, rules, progress=False)
                tables[name] = (feature_table(st.con), alert_truth(st.con, CURRENT_ALERTS_SQL, load_labels(labels)))
        features, truth = tables["train"]
        t = time.perf_counter()
        model = train_on(Labelled(features, truth), label_source="demo seed 1")
        trained = time.perf_counter() - t
        features, truth = tables["measure"]
        scores = model.score(features)
        m = queue_measures(list(scores.alert_ids), [float(p) for p in scores.priority], truth)
        print(f"demo seed 1 -> demo seed 2 ({args.events:,} events each); training {trained:.1f} s")
        for line in m.lines():
            print(f"  {line}")
        budget_recall(train_store, train_labels, measure_store, measure_labels, scores, work)
        # Three rounds, each on fresh copies (a re-scan of a store raises no new alerts), alternating
        # so that both see the same machine; the medians are compared.
        runs: dict[str, list[float]] = {"without": [], "with": []}
        n = 0
        for k in range(3):
            runs["without"].append(timed_scan(copy(pristine, work / f"plain{k}"), rules, None)[0])
            seconds, n = timed_scan(copy(pristine, work / f"scored{k}"), rules, model)
            runs["with"].append(seconds)
        without, with_model = statistics.median(runs["without"]), statistics.median(runs["with"])
        print(
            f"scan without a model {without:.2f} s; with the model active {with_model:.2f} s ({n:,} alerts scored): "
            f"{with_model / without:.2f}x (medians of 3 runs)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
