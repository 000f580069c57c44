"""Which features separate AMLGentex laundering transfers from legitimate ones (see docs/amlgentex.md).

Every feature is computed from unlabelled columns only (tx_date/step, src, dst, is_a2a, channel,
amount, bankOrig, bankDest); the labels (is_laundering, typology) are used only to measure it.
With --filtered DIR it also writes a copy of the data set keeping only transfers between two
low-activity accounts, so that `bench/amlgentex.py --data DIR` shows what such a filter would do.

    .venv/bin/python bench/amlgentex_features.py [--data ../shared/data/amlgentex-dev] [--filtered DIR]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "amlgentex-dev"
# An account is "low-activity" when it makes fewer ordinary payments (to outside the bank) than
# this share of the population median: relative, so it does not depend on the simulated length.
LOW_SHARE = 0.75

QUERIES = {
    "pattern span in days and amount spread (laundering typologies vs legitimate models)": """
        SELECT CASE WHEN laundering THEN typology ELSE 'legit ' || typology END AS pattern,
               count(*) AS patterns, round(avg(n), 1) AS tx_per_pattern,
               quantile_disc(span, [0.1, 0.5, 0.9]) AS span_days, round(median(cv), 2) AS median_cv
        FROM (SELECT typology, pattern_id, bool_or(is_laundering) AS laundering, count(*) AS n,
                     max(step) - min(step) AS span,
                     stddev(amount) / avg(amount) AS cv
              FROM t WHERE is_a2a GROUP BY ALL)
        GROUP BY ALL ORDER BY pattern""",
    "cross-bank and channel": """
        SELECT is_laundering, bankOrig != bankDest AS cross_bank, channel, count(*) AS n
        FROM t WHERE is_a2a GROUP BY ALL ORDER BY ALL""",
    "first contact (no earlier transfer between the same two accounts)": """
        SELECT is_laundering, round(avg((k = 1)::INT), 3) AS first_contact, count(*) AS n
        FROM (SELECT *, row_number() OVER (PARTITION BY src, dst ORDER BY step, tx_id) AS k
              FROM t WHERE is_a2a)
        GROUP BY ALL ORDER BY ALL""",
    "ordinary payments per account over the period (accounts in laundering vs not)": """
        SELECT laundering_account, count(*) AS accounts,
               quantile_disc(payments, [0.01, 0.05, 0.5, 0.95, 0.99]) AS payments,
               round(avg((cash > 0)::INT), 3) AS with_cash
        FROM acc GROUP BY ALL ORDER BY ALL""",
    "transfers by endpoints' activity (low = payments < share of median)": """
        SELECT t.is_laundering, count(*) AS n,
               round(avg((s.low)::INT), 3) AS sender_low, round(avg((r.low)::INT), 3) AS receiver_low,
               round(avg((s.low AND r.low)::INT), 3) AS both_low
        FROM t JOIN acc s ON s.id = t.src JOIN acc r ON r.id = t.dst
        WHERE t.is_a2a GROUP BY ALL ORDER BY ALL""",
    "the same, causal: each endpoint's payments in the 30 days up to the transfer (from day 30 on)": """
        WITH pay AS (SELECT src AS id, step FROM t WHERE NOT is_a2a AND dst < 0 AND channel = 'TRANSFER'),
        e AS (SELECT tx_id, is_laundering,
                     (SELECT count(*) FROM pay WHERE pay.id = t.src AND pay.step BETWEEN t.step - 29 AND t.step) AS s,
                     (SELECT count(*) FROM pay WHERE pay.id = t.dst AND pay.step BETWEEN t.step - 29 AND t.step) AS r
              FROM t WHERE is_a2a AND step >= 30)
        SELECT is_laundering, count(*) AS n, quantile_disc(s, [0.05, 0.5, 0.95]) AS sender_30d,
               quantile_disc(r, [0.05, 0.5, 0.95]) AS receiver_30d,
               round(avg((s <= 11 AND r <= 11)::INT), 3) AS both_at_most_11
        FROM e GROUP BY ALL ORDER BY ALL""",
}


def fan_episodes(con: duckdb.DuckDBPyConnection, source: Path, k: int, days: int) -> None:
    """What fan rules would find if an alert's evidence were the whole window from its first edge.

    Today a fan alert fires at the edge where k counterparties are reached and its evidence is the
    window at that edge, so a low k reports only the pattern's first edges. Here the window opens
    at an anchor's edge, and if it reaches k counterparties within `days` all its edges are one
    alert (windows do not overlap). Measured like bench/amlgentex.py.
    """
    rows = con.execute(f"SELECT tx_id, src, dst, step FROM '{source}' WHERE is_a2a ORDER BY step, tx_id").fetchall()
    labels = con.execute("SELECT tx_id, pattern_id, typology FROM t WHERE is_laundering").fetchall()
    pattern_of = {tx: pid for tx, pid, _ in labels}
    size = Counter(pid for _, pid, _ in labels)
    typology_of = {pid: typ for _, pid, typ in labels}
    alerts: list[list[int]] = []
    for anchor, other in ((1, 2), (2, 1)):  # fan_out by sender, fan_in by receiver
        edges = defaultdict(list)
        for row in rows:
            edges[row[anchor]].append(row)
        for seq in edges.values():
            i = 0
            while i < len(seq):
                window = [e for e in seq[i:] if e[3] - seq[i][3] < days]
                if len({e[other] for e in window}) >= k:
                    alerts.append([e[0] for e in window])
                    i += len(window)
                else:
                    i += 1
    detected: set[int] = set()
    good = 0
    for evidence in alerts:
        covered = Counter(pattern_of[tx] for tx in evidence if tx in pattern_of)
        good += bool(covered)
        detected |= {pid for pid, n in covered.items() if 2 * n >= size[pid]}
    found = Counter(typology_of[pid] for pid in detected)
    print(f"-- fan episodes k={k} window={days}d on {source}")
    print(
        f"alerts {len(alerts)}, precision {good / max(1, len(alerts)):.2f},"
        f" patterns found {dict(sorted(found.items()))}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--filtered", type=Path, help="write the low-activity-endpoint copy here")
    ap.add_argument("--fans", type=int, default=0, metavar="K", help="also simulate fan episodes with K counterparties")
    args = ap.parse_args()
    con = duckdb.connect()
    source = args.data / "transactions_labelled.parquet"
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{source}'")
    # Per account: ordinary payments out of the bank, cash use, and (for measuring only) whether
    # it took part in laundering.
    con.execute(
        """CREATE TABLE acc0 AS
           SELECT id,
                  count(*) FILTER (WHERE NOT is_a2a AND NOT incoming AND channel = 'TRANSFER') AS payments,
                  count(*) FILTER (WHERE channel = 'CASH') AS cash,
                  bool_or(is_laundering) AS laundering_account
           FROM (SELECT src AS id, false AS incoming, * FROM t UNION ALL BY NAME
                 SELECT dst AS id, true AS incoming, * FROM t)
           WHERE id >= 0 GROUP BY id"""
    )
    con.execute(
        f"CREATE TABLE acc AS SELECT *, payments < {LOW_SHARE} * (SELECT median(payments) FROM acc0) AS low FROM acc0"
    )
    for title, sql in QUERIES.items():
        print(f"-- {title}")
        print(con.sql(sql))
    if args.filtered:
        args.filtered.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"""COPY (SELECT * FROM '{source}' WHERE NOT is_a2a
                      OR (src IN (SELECT id FROM acc WHERE low) AND dst IN (SELECT id FROM acc WHERE low)))
                TO '{args.filtered / "transactions_labelled.parquet"}' (FORMAT parquet)"""
        )
        print(f"wrote {args.filtered}; measure with: .venv/bin/python bench/amlgentex.py --data {args.filtered}")
    if args.fans:
        # 23 days: the longest laundering fan spans 22 days on this seed.
        fan_episodes(con, source, args.fans, 23)
        if args.filtered:
            fan_episodes(con, args.filtered / "transactions_labelled.parquet", args.fans, 23)


if __name__ == "__main__":
    main()
