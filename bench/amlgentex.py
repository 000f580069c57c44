"""Measure a pack on the labelled AMLGentex sets: per typology and per rule, per alert and per case.

For each set, the transactions are ingested (without their labels) into a temporary store through
mappings/amlgentex.yaml and the pack is scanned. Printed, with the labels made from the set:

- per rule: the patterns of the typologies it targets and how many it detects (one alert's
  evidence holds at least half a pattern's laundering transactions), its alerts, its precision
  (alerts holding a transaction of a pattern it targets) and its any-rule precision;
- per typology: patterns detected by its own rules together, by any rule, and by one case (the
  alerts of one scheme together, flagstone.schemes);
- the pack's alerts and the cases they make, the largest case, and the time to link them.

    .venv/bin/python bench/amlgentex.py [--data DIR ...] [--rules packs/aml-graph] [--set RULE.PARAM=V]
    .venv/bin/python bench/amlgentex.py --rules packs/aml-typologies/pass_through.yaml \
        --set aml.pass_through.min_amount=500
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
from rich.console import Console

from flagstone.evaluate import (
    CURRENT_ALERTS_SQL,
    evaluate_store,
    evaluate_typologies,
    render_scores,
    render_typologies,
)
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.schemes import link_alerts
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout, on developers' machines and in CI alike.
DATA = REPO.parent / "shared" / "data"
DEFAULT_SETS = (DATA / "amlgentex-dev", DATA / "amlgentex-dev-seed1")
TRANSACTIONS = "transactions_labelled.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", help="an AMLGentex set (repeatable; default both dev sets)")
    ap.add_argument("--rules", type=Path, default=REPO / "packs" / "aml-graph")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="RULE_ID.PARAM=VALUE, as for scan")
    args = ap.parse_args()
    console = Console(width=120, markup=False)
    for data in args.data or DEFAULT_SETS:
        work = Path(tempfile.mkdtemp(prefix="flagstone-amlgentex-"))
        try:
            measure(data, args.rules, args.overrides, work, console)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def unlabelled(data: Path, work: Path) -> tuple[Path, Path]:
    """The set's transactions without their labels (rules and features must not see them), and
    its labels as a per-pattern labels file (docs/backtest.md)."""
    export, labels = work / "transactions.parquet", work / "patterns.csv"
    source = data / TRANSACTIONS
    duckdb.sql(
        f"COPY (SELECT tx_id, tx_date, src, dst, is_a2a, channel, amount, bankOrig, "
        f"bankDest FROM '{source}') TO '{export}' (FORMAT parquet)"
    )
    duckdb.sql(
        f"COPY (SELECT pattern_id, typology, 'amlgentex' AS source, CAST(tx_id AS VARCHAR) AS event_id "
        f"FROM '{source}' WHERE is_laundering) TO '{labels}' (HEADER)"
    )
    return export, labels


def measure(data: Path, rules_path: Path, overrides: list[str], work: Path, console: Console) -> None:
    export, labels = unlabelled(data, work)
    console.rule(data.name)
    with Store(work / "store.duckdb") as store:
        console.print(ingest_file(store, export, REPO / "mappings" / "amlgentex.yaml", progress=False).summary())
        rules = load_rules([rules_path], overrides=overrides)
        t = time.perf_counter()
        scan_store(store, rules, progress=False)
        console.print(f"scan: {len(rules)} rules in {time.perf_counter() - t:.1f}s")
        console.print(render_scores(evaluate_store(store, labels)))
        console.print(render_typologies(evaluate_typologies(store, labels), "pattern"))
        t = time.perf_counter()
        schemes = link_alerts(store.con, CURRENT_ALERTS_SQL)
        took = time.perf_counter() - t
    sizes = Counter(schemes.values())
    console.print(
        f"{len(schemes):,} alerts make {len(sizes):,} cases (largest {max(sizes.values(), default=0)} alerts); "
        f"linked in {took:.2f}s"
    )


if __name__ == "__main__":
    main()
