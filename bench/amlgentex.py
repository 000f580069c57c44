"""Measure packs/aml-graph on the labelled AMLGentex development set.

Ingests the transactions (without their labels) into a temporary store through
mappings/amlgentex.yaml, scans the pack, and prints per typology how many laundering patterns are
detected — an alert whose evidence covers at least half of a pattern's laundering transactions —
and touched (an alert's evidence holds one of its transactions), and the precision of the pack's
alerts (share whose evidence holds a laundering transaction).

    .venv/bin/python bench/amlgentex.py [--data ../shared/data/amlgentex-dev]
    .venv/bin/python bench/amlgentex.py --rules packs/aml-typologies/pass_through.yaml \
        --set aml.pass_through.min_amount=500
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb

from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout, on developers' machines and in CI alike.
DEFAULT_DATA = REPO.parent / "shared" / "data" / "amlgentex-dev"
TRANSACTIONS = "transactions_labelled.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rules", type=Path, default=REPO / "packs" / "aml-graph")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="RULE_ID.PARAM=VALUE, as for scan")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flagstone-amlgentex-"))
    try:
        export = work / "transactions.parquet"
        source = args.data / TRANSACTIONS
        # The export without its labels: rules must not be able to see them.
        duckdb.sql(
            f"COPY (SELECT tx_id, tx_date, src, dst, is_a2a, channel, amount, bankOrig, "
            f"bankDest FROM '{source}') TO '{export}' (FORMAT parquet)"
        )
        labels = duckdb.sql(
            f"SELECT CAST(tx_id AS VARCHAR), typology, pattern_id FROM '{source}' WHERE is_laundering"
        ).fetchall()
        with Store(work / "store.duckdb") as store:
            print(ingest_file(store, export, REPO / "mappings" / "amlgentex.yaml", progress=False).summary())
            rules = load_rules([args.rules], overrides=args.overrides)
            t = time.perf_counter()
            scan_store(store, rules, progress=False)
            print(f"scan: {len(rules)} rules in {time.perf_counter() - t:.1f}s")
            alerts = store.con.execute("SELECT rule_id, evidence FROM alerts").fetchall()
        report(labels, alerts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(labels: list[tuple[str, str, int]], alerts: list[tuple[str, list[str]]]) -> None:
    pattern_of = {tx: pid for tx, _, pid in labels}
    pattern_txs: dict[int, set[str]] = defaultdict(set)
    typology_of: dict[int, str] = {}
    for tx, typology, pid in labels:
        pattern_txs[pid].add(tx)
        typology_of[pid] = typology
    detected: set[int] = set()
    touched: set[int] = set()
    alerts_on: dict[str, int] = defaultdict(int)  # typology -> alerts whose evidence holds one of its txs
    per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for rule_id, evidence in alerts:
        covered: dict[int, int] = defaultdict(int)
        for tx in evidence:
            if tx in pattern_of:
                covered[pattern_of[tx]] += 1
        per_rule[rule_id][0] += 1
        per_rule[rule_id][1] += bool(covered)
        detected |= {pid for pid, n in covered.items() if 2 * n >= len(pattern_txs[pid])}
        touched |= set(covered)
        for typology in {typology_of[pid] for pid in covered}:
            alerts_on[typology] += 1
    print(f"{'typology':<16} detected / patterns   touched   alerts on it")
    for typology in sorted(set(typology_of.values())):
        pids = [p for p, t in typology_of.items() if t == typology]
        hit = sum(p in detected for p in pids)
        seen = sum(p in touched for p in pids)
        print(
            f"{typology:<16} {hit:>3} / {len(pids):<3} recall {hit / len(pids):.2f}"
            f"   {seen:>3} / {len(pids):<3} {alerts_on[typology]:>6}"
        )
    total = sum(n for n, _ in per_rule.values())
    good = sum(g for _, g in per_rule.values())
    print(f"{'rule':<28} {'alerts':>7} {'with laundering':>16} {'precision':>9}")
    for rule_id, (n, g) in sorted(per_rule.items()):
        print(f"{rule_id:<28} {n:>7} {g:>16} {g / n:>9.2f}")
    print(f"pack precision: {good} / {total} = {good / total if total else 0:.2f}")


if __name__ == "__main__":
    main()
