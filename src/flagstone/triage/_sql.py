"""The one statement that computes every alert's features, written once in DuckDB's dialect and
transpiled by sqlglot for Spark (as the rule engines share ``engines/sql.py``).

What an alert may know: the events up to and including its firing event in the engines' event
order ``(ts, event_id, source)`` (``_known``). An event at exactly the alert's time that comes
after the firing event in that order is unknown, as it would be to the real-time engine, which
fires before it has seen that event. Evidence after the firing event (episode rules extend their
evidence while the pattern holds) is left out for the same reason.

Steps, each a CTE over the ones before:

- ``al``: the alerts with their cut-off; ``anchor``: each alert's accounts, parsed from
  ``group_key`` (its ``actor=``, ``counterparty=`` and ``account=`` parts, the last from the
  ``model`` kind; none when grouped by other fields).
- ``evid``: the known evidence events; ``pair_events``: every event between two different
  accounts, numbered within its pair (either direction) in event order, so ``k = 1`` is a first
  contact; ``pf``: each pair's first event, once from each side.
- ``hist``: every known event of an anchor account, once per anchor and side (out: the anchor is
  the actor; in: the counterparty); ``pairs``: per anchor and other account, which directions.
- ``nb``: each alert's neighbours (its anchors' counterparties). Their degree at the alert's time
  is a running count over ``pf`` with the cut-offs merged in (``nb_run``), so a hub (a merchant,
  the outside world) costs one row per account it met, once, not once per alert; ``nn`` expands
  only neighbours that are not hubs, for the two-hop reach.
- ``touch``: the accounts each alert touches (anchors and known evidence), for the alert context.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import sqlglot
from sqlglot import exp

from flagstone.events import cash_sql

# An intermediate account with more counterparties than this (a merchant, the outside world) is
# counted in the two-hop reach but not expanded: its neighbours say little and cost a lot.
HUB_DEGREE = 100
RECENT_DAYS = 30
POSITIVE_OUTCOMES = ("approved", "filed")  # the case states that mean "reported" (oversight/workflow.py)
NEGATIVE_OUTCOMES = ("dismissed",)
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 86_400_000_000


def _known(e: str, a: str, ts: str = "ts", eid: str = "event_id", src: str = "source") -> str:
    """Event ``e`` is at or before alert ``a``'s firing event in (ts, event_id, source) order."""
    return (
        f"({e}.{ts} < {a}.c_ts OR ({e}.{ts} = {a}.c_ts AND ({e}.{eid} < {a}.c_id "
        f"OR ({e}.{eid} = {a}.c_id AND {e}.{src} <= {a}.c_src))))"
    )


def _group_part(field: str) -> str:
    # group_key is "f1=v1, f2=v2" in group_by order (rules/finding.py); a value ends where the next
    # "field=" starts or at the end.
    return f"regexp_extract(group_key, '(?:^|, ){field}=(.*?)(?:, [a-z_.]+=|$)', 1)"


def _hours(a: str, b: str) -> str:
    return f"(CAST(date_diff('microsecond', {a}, {b}) AS DOUBLE) / {_US_PER_HOUR})"


def _days(a: str, b: str) -> str:
    return f"(CAST(date_diff('microsecond', {a}, {b}) AS DOUBLE) / {_US_PER_DAY})"


def _ratio(num: str, den: str) -> str:
    return f"(CAST({num} AS DOUBLE) / nullif({den}, 0))"


def _outcome_ctes(outcomes: str | None) -> str:
    if outcomes is None:
        return ""
    pos = ", ".join(f"'{o}'" for o in POSITIVE_OUTCOMES)
    neg = ", ".join(f"'{o}'" for o in NEGATIVE_OUTCOMES)
    return f""",
outc AS (
  SELECT an.alert_id,
         count(*) FILTER (WHERE o.outcome IN ({pos})) AS n_pos,
         count(*) FILTER (WHERE o.outcome IN ({neg})) AS n_neg
  FROM anchor an JOIN {outcomes} o ON o.account = an.acct
  WHERE o.ts < an.c_ts
  GROUP BY an.alert_id
)"""


def feature_sql(
    alerts: str,
    events: str,
    outcomes: str | None,
    dialect: str = "duckdb",
    hub_degree: int = HUB_DEGREE,
    targets: str | None = None,
    graph: bool = True,
) -> str:
    """The statement. ``graph=False`` leaves out the neighbours' features (``GRAPH``: NULL), and
    with ``targets`` it then reads no neighbour's events: a scan's scoring needs only what its
    model reads."""
    return _feature_sql(alerts, events, outcomes, dialect, hub_degree, targets, graph)


# The features that read the anchors' counterparties' own events (two hops out).
GRAPH = ("two_hop_reach", "counterparty_degree_mean", "counterparty_tenure_days_mean")


@cache
def _feature_sql(
    alerts: str, events: str, outcomes: str | None, dialect: str, hub_degree: int, targets: str | None, graph: bool
) -> str:
    sql = _duckdb_sql(alerts, events, outcomes, int(hub_degree), targets, graph)
    if dialect == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.transform(_REWRITES.get(dialect, _same)).sql(dialect=dialect)


def _same(node: exp.Expression) -> exp.Expression:
    return node


def _spark(node: exp.Expression) -> exp.Expression:
    # DuckDB's list_extract is 1-based, as Spark's element_at is (Spark's arr[i] counts from 0).
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "list_extract":
        return exp.Anonymous(this="element_at", expressions=node.expressions)
    return node


# What sqlglot does not translate by itself, per dialect: a node rewrite.
_REWRITES: dict[str, Callable[[exp.Expression], exp.Expression]] = {"spark": _spark}


def _targeted(alerts: str, events: str, targets: str) -> str:
    """The CTEs that restrict the work to the alerts listed in ``targets`` (a scan's new alerts).

    Every other alert still counts as context (``al_all``, ``anchor_all``, ``evid_all``). ``events``
    need hold only the relevant events (``relevant_events_sql``), which is what makes this fast."""
    return f"""
al AS (SELECT * FROM al_all WHERE alert_id IN (SELECT alert_id FROM {targets})),
anchor_all AS ({_anchor_sql("al_all")}),
anchor AS (SELECT * FROM anchor_all WHERE alert_id IN (SELECT alert_id FROM al)),
{_evidence("al", events)}
ev_keys_all AS ({_ev_keys_sql("al_all")}),
evid_all AS ({_evid_sql("ev_keys_all", "al_all", events)}),"""


# The event columns the statement reads.
EVENT_READS = "source, event_id, ts, actor, counterparty, amount, kind, channel"


def _targets_sql(alerts: str, targets: str) -> str:
    """CTEs ``t`` (the alerts listed in ``targets``) and ``anchor`` (their accounts)."""
    return f"""t AS (
  SELECT alert_id, rule_id, group_key, last_ts AS c_ts, fire_event_id AS c_id, fire_source AS c_src,
         evidence, evidence_sources
  FROM {alerts} WHERE alert_id IN (SELECT alert_id FROM {targets})
),
anchor AS ({_anchor_sql("t")}),"""


def relevant_events_sql(alerts: str, events: str, targets: str) -> str:
    """In one pass over ``events``: the events of the accounts of the alerts in ``targets`` and their
    evidence (by event id, so a few more events may come along, which changes no value).

    Every feature of those alerts reads only such events, except in two cases that
    ``more_events_sql`` fetches: an evidence payment between two accounts that are not the alerts'
    own (its pair's earlier payments tell whether it was a first contact), and, for the graph
    features, the accounts' counterparties."""
    return f"""
WITH {_targets_sql(alerts, targets)}
keys AS (SELECT DISTINCT unnest(evidence) AS eid FROM t)
SELECT {EVENT_READS} FROM {events}
WHERE actor IN (SELECT acct FROM anchor) OR counterparty IN (SELECT acct FROM anchor)
   OR event_id IN (SELECT eid FROM keys)
"""


def more_events_sql(alerts: str, targets: str, known: str, graph: bool) -> str:
    """The accounts whose events ``relevant_events_sql`` did not read but the features need (see
    there), from the events ``known`` it read."""
    neighbours = """
  UNION SELECT r.counterparty FROM known_events r WHERE r.actor IN (SELECT acct FROM anchor)
  UNION SELECT r.actor FROM known_events r WHERE r.counterparty IN (SELECT acct FROM anchor)"""
    return f"""
WITH {_targets_sql(alerts, targets)}
known_events AS (SELECT * FROM {known}),
keys AS ({_ev_keys_sql("t")}),
loose AS (  -- evidence payments that touch none of the alerts' accounts
  SELECT r.actor, r.counterparty FROM known_events r JOIN keys k ON r.source = k.src AND r.event_id = k.eid
  WHERE r.actor NOT IN (SELECT acct FROM anchor) AND r.counterparty NOT IN (SELECT acct FROM anchor)
),
more AS (
  SELECT actor AS acct FROM loose
  UNION SELECT counterparty FROM loose{neighbours if graph else ""}
)
SELECT acct FROM more WHERE acct IS NOT NULL AND acct NOT IN (SELECT acct FROM anchor)
"""


def _evidence(al: str, events: str) -> str:
    return f"""
ev_keys AS ({_ev_keys_sql(al)}),
evid AS ({_evid_sql("ev_keys", al, events)}),"""


def _anchor_sql(al: str) -> str:
    return f"""SELECT DISTINCT alert_id, rule_id, c_ts, c_id, c_src, acct FROM (
    SELECT alert_id, rule_id, c_ts, c_id, c_src, {_group_part("actor")} AS acct FROM {al}
    UNION ALL
    SELECT alert_id, rule_id, c_ts, c_id, c_src, {_group_part("counterparty")} AS acct FROM {al}
    UNION ALL
    SELECT alert_id, rule_id, c_ts, c_id, c_src, {_group_part("account")} AS acct FROM {al}
  ) AS parts
  WHERE acct <> ''"""


def _ev_keys_sql(al: str) -> str:
    return f"""SELECT al.alert_id, list_extract(al.evidence, t.i) AS eid, list_extract(al.evidence_sources, t.i) AS src
  FROM {al} al CROSS JOIN UNNEST(generate_series(1, array_length(al.evidence))) AS t(i)"""


def _evid_sql(keys: str, al: str, events: str) -> str:
    return f"""SELECT al.alert_id, e.source, e.event_id, e.ts, e.actor, e.counterparty, e.amount
  FROM {keys} k
  JOIN {al} al ON al.alert_id = k.alert_id
  JOIN {events} e ON e.source = k.src AND e.event_id = k.eid
  WHERE {_known("e", "al")}"""


def _duckdb_sql(
    alerts: str, events: str, outcomes: str | None, hub_degree: int, targets: str | None = None, graph: bool = True
) -> str:
    has = "an_n > 0"  # group features are unknown (NULL) for an alert without accounts
    outcome_cols = (
        "CAST(CASE WHEN an_n > 0 THEN coalesce(oc.n_pos, 0) END AS DOUBLE) AS prior_reported_cases,\n"
        "  CAST(CASE WHEN an_n > 0 THEN coalesce(oc.n_neg, 0) END AS DOUBLE) AS prior_dismissed_cases"
        if outcomes is not None
        else "CAST(NULL AS DOUBLE) AS prior_reported_cases,\n  CAST(NULL AS DOUBLE) AS prior_dismissed_cases"
    )
    outcome_join = "LEFT JOIN outc oc ON oc.alert_id = al.alert_id" if outcomes is not None else ""
    graph_cols = (
        f"CAST(CASE WHEN {has} THEN coalesce(r.n_reach, 0) END AS DOUBLE) AS two_hop_reach,\n"
        f"  {_ratio('c.sum_deg', 'c.n_cp')} AS counterparty_degree_mean,\n"
        f"  (CAST(c.sum_age_us AS DOUBLE) / {_US_PER_DAY} / nullif(c.n_cp, 0)) AS counterparty_tenure_days_mean"
        if graph
        else ",\n  ".join(f"CAST(NULL AS DOUBLE) AS {name}" for name in GRAPH)
    )
    graph_join = (
        "LEFT JOIN reach r ON r.alert_id = al.alert_id\nLEFT JOIN cp c ON c.alert_id = al.alert_id\n" if graph else ""
    )
    # Without the graph features only the evidence's pairs need numbering (pf is not read).
    only_evidence_pairs = (
        ""
        if graph
        else "\n    AND EXISTS (SELECT 1 FROM evid v"
        "\n                WHERE least(v.actor, v.counterparty) = least(e.actor, e.counterparty)"
        "\n                  AND greatest(v.actor, v.counterparty) = greatest(e.actor, e.counterparty))"
    )
    # Without targets every alert is computed and all of them are also the context; with targets
    # (_targeted) the context keeps every alert, and `events` holds only the relevant events.
    if targets is None:
        al_all, anchor_all, evid_all, ev = "al", "anchor", "evid", events
        scope = f"""
anchor AS ({_anchor_sql("al")}),"""
        evidence = _evidence("al", events)
    else:
        al_all, anchor_all, evid_all, ev = "al_all", "anchor_all", "evid_all", events
        scope = _targeted(alerts, events, targets)
        evidence = ""  # made in the scope
    return f"""
WITH {al_all} AS (
  SELECT alert_id, rule_id, severity, group_key, last_ts AS c_ts, fire_event_id AS c_id, fire_source AS c_src,
         evidence, evidence_sources
  FROM {alerts}
),{scope}
an_count AS (SELECT alert_id, count(*) AS an_n FROM anchor GROUP BY alert_id),{evidence}
pair_events AS (
  SELECT e.source, e.event_id, e.ts, least(e.actor, e.counterparty) AS lo, greatest(e.actor, e.counterparty) AS hi,
         row_number() OVER (PARTITION BY least(e.actor, e.counterparty), greatest(e.actor, e.counterparty)
                            ORDER BY e.ts, e.event_id, e.source) AS k
  FROM {ev} e
  WHERE e.actor IS NOT NULL AND e.counterparty IS NOT NULL AND e.actor <> e.counterparty{only_evidence_pairs}
),
pf AS (
  SELECT x, y, ts, event_id, source FROM (
    SELECT lo AS x, hi AS y, ts, event_id, source FROM pair_events WHERE k = 1
    UNION ALL
    SELECT hi AS x, lo AS y, ts, event_id, source FROM pair_events WHERE k = 1
  ) AS both_sides
),
ev_feat AS (
  SELECT v.alert_id,
         count(*) AS n,
         sum(v.amount) AS amount,
         min(v.ts) AS t0, max(v.ts) AS t1,
         count(*) FILTER (WHERE p.k = 1) AS first_contacts,
         count(*) FILTER (WHERE p.k IS NOT NULL) AS with_pair
  FROM evid v LEFT JOIN pair_events p ON p.source = v.source AND p.event_id = v.event_id
  GROUP BY v.alert_id
),
hist AS (
  SELECT an.alert_id, an.acct, 'out' AS side, e.counterparty AS other, e.ts, e.amount, {cash_sql("e")} AS cash
  FROM anchor an JOIN {ev} e ON e.actor = an.acct
  WHERE {_known("e", "an")}
  UNION ALL
  SELECT an.alert_id, an.acct, 'in' AS side, e.actor AS other, e.ts, e.amount, {cash_sql("e")} AS cash
  FROM anchor an JOIN {ev} e ON e.counterparty = an.acct
  WHERE {_known("e", "an")}
),
grp AS (
  SELECT h.alert_id,
         count(*) FILTER (WHERE h.side = 'out') AS n_out,
         count(*) FILTER (WHERE h.side = 'in') AS n_in,
         sum(h.amount) FILTER (WHERE h.side = 'out') AS amt_out,
         sum(h.amount) FILTER (WHERE h.side = 'in') AS amt_in,
         count(*) FILTER (WHERE h.cash) AS n_cash,
         count(*) FILTER (WHERE h.ts > al.c_ts - INTERVAL {RECENT_DAYS} DAY) AS n_recent,
         min(h.ts) AS first_ts,
         max(al.c_ts) AS c_ts
  FROM hist h JOIN al ON al.alert_id = h.alert_id
  GROUP BY h.alert_id
),
pairs AS (
  SELECT alert_id, acct, other,
         max(CASE WHEN side = 'out' THEN 1 ELSE 0 END) AS has_out,
         max(CASE WHEN side = 'in' THEN 1 ELSE 0 END) AS has_in
  FROM hist
  WHERE other IS NOT NULL AND other <> acct
  GROUP BY alert_id, acct, other
),
deg AS (
  SELECT alert_id, count(*) AS n_pairs, sum(has_out) AS n_outdeg, sum(has_in) AS n_indeg,
         sum(has_out * has_in) AS n_mutual
  FROM pairs GROUP BY alert_id
),
nb AS (
  SELECT DISTINCT p.alert_id, p.other AS v, an.c_ts, an.c_id, an.c_src
  FROM pairs p JOIN anchor an ON an.alert_id = p.alert_id AND an.acct = p.acct
),
nb_stream AS (  -- the first event of each pair of a neighbour, and each alert's cut-off, in event order
  SELECT f.x AS v, f.ts, f.event_id, f.source, 0 AS mark, CAST(NULL AS VARCHAR) AS alert_id
  FROM pf f WHERE f.x IN (SELECT v FROM nb)
  UNION ALL
  SELECT v, c_ts AS ts, c_id AS event_id, c_src AS source, 1 AS mark, alert_id FROM nb
),
nb_run AS (  -- a neighbour's degree at each cut-off: a running count, so a hub costs no join
  SELECT alert_id, v, mark,
         sum(1 - mark) OVER (PARTITION BY v ORDER BY ts, event_id, source, mark
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS d
  FROM nb_stream
),
nb_deg AS (SELECT alert_id, v, d FROM nb_run WHERE mark = 1),
nn AS (  -- the known neighbours of the neighbours that are not hubs
  SELECT nb.alert_id, nb.v, f.y AS w
  FROM nb JOIN nb_deg nd ON nd.alert_id = nb.alert_id AND nd.v = nb.v
  JOIN pf f ON f.x = nb.v
  WHERE nd.d <= {hub_degree} AND {_known("f", "nb")}
),
seen AS (
  SELECT acct, min(ts) AS first_ts FROM (
    SELECT actor AS acct, ts FROM {ev} WHERE actor IS NOT NULL
    UNION ALL
    SELECT counterparty AS acct, ts FROM {ev} WHERE counterparty IS NOT NULL
  ) AS sides
  GROUP BY acct
),
cp AS (
  SELECT nb.alert_id, count(*) AS n_cp, sum(nd.d) AS sum_deg,
         sum(date_diff('microsecond', s.first_ts, nb.c_ts)) AS sum_age_us
  FROM nb JOIN nb_deg nd ON nd.alert_id = nb.alert_id AND nd.v = nb.v
  JOIN seen s ON s.acct = nb.v
  GROUP BY nb.alert_id
),
reach_set AS (
  SELECT alert_id, v AS w FROM nb
  UNION
  SELECT alert_id, w FROM nn
),
reach AS (
  SELECT r.alert_id, count(*) AS n_reach
  FROM reach_set r LEFT JOIN anchor an ON an.alert_id = r.alert_id AND an.acct = r.w
  WHERE an.acct IS NULL
  GROUP BY r.alert_id
),
touch AS (
  SELECT DISTINCT alert_id, acct FROM (
    SELECT alert_id, acct FROM {anchor_all}
    UNION ALL
    SELECT alert_id, actor AS acct FROM {evid_all} WHERE actor IS NOT NULL
    UNION ALL
    SELECT alert_id, counterparty AS acct FROM {evid_all} WHERE counterparty IS NOT NULL
  ) AS t
),
other_rules AS (
  SELECT an.alert_id, count(DISTINCT b.alert_id) AS n
  FROM anchor an JOIN touch t ON t.acct = an.acct
  JOIN {al_all} b ON b.alert_id = t.alert_id
  WHERE b.rule_id <> an.rule_id
    AND {_known("b", "an", ts="c_ts", eid="c_id", src="c_src")}
  GROUP BY an.alert_id
),
earlier AS (
  SELECT an.alert_id, count(DISTINCT b.alert_id) AS n
  FROM anchor an JOIN {anchor_all} b ON b.acct = an.acct
  WHERE b.alert_id <> an.alert_id
    AND {_known("b", "an", ts="c_ts", eid="c_id", src="c_src")}
  GROUP BY an.alert_id
){_outcome_ctes(outcomes)}
SELECT
  al.alert_id, al.rule_id, al.c_ts AS fire_ts,
  CAST(CASE al.severity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 WHEN 'critical' THEN 3 END
       AS DOUBLE) AS severity_rank,
  CAST(coalesce(ef.n, 0) AS DOUBLE) AS evidence_events,
  CAST(ef.amount AS DOUBLE) AS evidence_amount,
  {_hours("ef.t0", "ef.t1")} AS evidence_span_hours,
  CAST(coalesce(ef.first_contacts, 0) AS DOUBLE) AS evidence_first_contacts,
  {_ratio("ef.first_contacts", "ef.with_pair")} AS evidence_first_contact_share,
  CAST(CASE WHEN {has} THEN coalesce(g.n_out, 0) END AS DOUBLE) AS group_events_out,
  CAST(CASE WHEN {has} THEN coalesce(g.n_in, 0) END AS DOUBLE) AS group_events_in,
  CAST(CASE WHEN {has} THEN coalesce(g.amt_out, 0) END AS DOUBLE) AS group_amount_out,
  CAST(CASE WHEN {has} THEN coalesce(g.amt_in, 0) END AS DOUBLE) AS group_amount_in,
  CAST(CASE WHEN {has} THEN coalesce(g.n_recent, 0) END AS DOUBLE) AS group_events_recent,
  {_ratio("g.n_cash", "g.n_out + g.n_in")} AS group_cash_share,
  {_days("g.first_ts", "g.c_ts")} AS group_tenure_days,
  CAST(CASE WHEN {has} THEN coalesce(d.n_pairs, 0) END AS DOUBLE) AS group_counterparties,
  CAST(CASE WHEN {has} THEN coalesce(d.n_outdeg, 0) END AS DOUBLE) AS out_degree,
  CAST(CASE WHEN {has} THEN coalesce(d.n_indeg, 0) END AS DOUBLE) AS in_degree,
  {_ratio("d.n_mutual", "d.n_pairs")} AS reciprocity,
  {graph_cols},
  CAST(CASE WHEN {has} THEN coalesce(o.n, 0) END AS DOUBLE) AS other_rule_alerts,
  CAST(CASE WHEN {has} THEN coalesce(ea.n, 0) END AS DOUBLE) AS earlier_alerts,
  {outcome_cols}
FROM al
LEFT JOIN an_count ac ON ac.alert_id = al.alert_id
LEFT JOIN ev_feat ef ON ef.alert_id = al.alert_id
LEFT JOIN grp g ON g.alert_id = al.alert_id
LEFT JOIN deg d ON d.alert_id = al.alert_id
{graph_join}LEFT JOIN other_rules o ON o.alert_id = al.alert_id
LEFT JOIN earlier ea ON ea.alert_id = al.alert_id
{outcome_join}
ORDER BY al.alert_id
"""
