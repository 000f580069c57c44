"""Schemes: alerts that show one piece of suspected crime, linked so that a reviewer reads them as
one case (issue 16).

One laundering scheme fires many alerts: several rules on the same payments (a cycle also fires
the stack rule), the same finding again after a re-scan with other thresholds (another parameter
set, docs/rules.md), overlapping episodes of one account. Two alerts are **linked** when their
evidence (with the firing event) is mostly the same: the events they share are at least
``MIN_JACCARD`` of the events either holds (Jaccard index). A **scheme** is a set of linked alerts,
joined strongest link first and never beyond ``MAX_ALERTS`` alerts; its id is its smallest alert
id, so the same alerts always make the same schemes.

Why not any shared account or event. On the AMLGentex sets, linking alerts that share any event,
or a non-hub account within overlapping periods, joined 3,438 of 3,496 alerts (100-day set) and
4,672 of 4,812 (365-day set) into one "scheme": background payments and busy accounts connect
everything. Jaccard 0.3 still made a 912-alert scheme on the 100-day set; 0.7 merged almost nothing
on the 365-day set (4,211 cases of 4,812 alerts). With 0.5 and the cap of 50 (which splits only the
100-day set's largest schemes), ``bench/amlgentex.py`` gives 2,378 and 3,465 cases, the largest of
50 and 48 alerts, and patterns detected per case 70/70 and 191/210 (per alert 70/70 and 190/210).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from flagstone.store import Store

MIN_JACCARD = 0.5
MAX_ALERTS = 50


def _links_sql(alerts_sql: str) -> str:
    """Pairs of alerts sharing events, with their Jaccard index, strongest first."""
    return f"""
WITH cur AS ({alerts_sql}),
ev AS (
  SELECT DISTINCT alert_id, source, event_id FROM (
    SELECT alert_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id FROM cur
    UNION ALL SELECT alert_id, fire_source, fire_event_id FROM cur
  )
),
n AS (SELECT alert_id, count(*) AS n FROM ev GROUP BY alert_id),
shared AS (
  SELECT a.alert_id AS a, b.alert_id AS b, count(*) AS k
  FROM ev a JOIN ev b ON a.source = b.source AND a.event_id = b.event_id AND a.alert_id < b.alert_id
  GROUP BY ALL
)
SELECT s.a, s.b, CAST(s.k AS DOUBLE) / (na.n + nb.n - s.k) AS jaccard
FROM shared s JOIN n na ON na.alert_id = s.a JOIN n nb ON nb.alert_id = s.b
WHERE CAST(s.k AS DOUBLE) / (na.n + nb.n - s.k) >= {MIN_JACCARD}
ORDER BY jaccard DESC, s.a, s.b
"""


def group(ids: Iterable[str], links: Iterable[tuple[str, str]], max_size: int = MAX_ALERTS) -> dict[str, str]:
    """Join ``links`` in their order (a union-find), skipping a link that would make a group of more
    than ``max_size``; each id -> the smallest id of its group."""
    parent = {i: i for i in ids}
    size = dict.fromkeys(parent, 1)

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb and size[ra] + size[rb] <= max_size:
            keep, gone = min(ra, rb), max(ra, rb)
            parent[gone] = keep
            size[keep] += size[gone]
    return {i: root(i) for i in parent}


def link_alerts(
    con: duckdb.DuckDBPyConnection, alerts_sql: str = "SELECT * FROM alerts", *, max_size: int = MAX_ALERTS
) -> dict[str, str]:
    """Every alert ``alerts_sql`` selects (the store's alert columns) -> its scheme id."""
    ids = [str(a) for (a,) in con.execute(f"SELECT alert_id FROM ({alerts_sql}) ORDER BY alert_id").fetchall()]
    links = [(str(a), str(b)) for a, b, _ in con.execute(_links_sql(alerts_sql)).fetchall()]
    return group(ids, links, max_size)


def store_schemes(store: Store) -> int:
    """Link every stored alert and replace the store's ``schemes`` table; returns how many schemes."""
    schemes = link_alerts(store.con)
    table = pa.table(
        {"alert_id": pa.array(list(schemes), pa.string()), "scheme_id": pa.array(list(schemes.values()), pa.string())}
    )
    store.replace_rows("schemes", table)
    return len(set(schemes.values()))
