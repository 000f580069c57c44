"""DuckDB statement for the ``sequence`` kind.

Candidate pairs come from one self-join of the group's events: A before B in event order
(``seq``), A inside B's window ``(ts(B) - T, ts(B)]``, A passing ``first``, the pair passing
``then``. Cost grows with the number of (A candidate, B) pairs within T per group: about
N × (A candidates per group within T), plus one sort of the events. With the account view the
statement reads the legs of ``engines/legs.py`` instead of the events.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from flagstone.engines.duckdb.sql import event_sql, from_events
from flagstone.engines.duckdb.steps import (
    Carried,
    as_double,
    fired_cte,
    micros_between,
    numbered_ctes,
    partition,
    same_group,
)
from flagstone.engines.legs import legs_ctes
from flagstone.rules import ir
from flagstone.rules.kinds.sequence import EARLIER, SequenceRule


def sequence_sql(rule: SequenceRule, events: str, entities: str) -> str:
    carried = Carried(rule.then, *(ir.Field(f) for f in rule.earlier_read))

    def earlier(name: str) -> exp.Expression:
        # a.<field> in `then` is the carried column of that field on the A side of the pair.
        return exp.column(carried.cols[ir.Field(name.removeprefix(EARLIER))], table="a")

    then = carried.sql(rule.then, "b", earlier)
    computed = f", coalesce({event_sql(rule.first)}, FALSE) AS is_first"
    a_cols = "".join(f", a.{carried.cols[ir.Field(f)]} AS a_{f}" for f in rule.earlier_shown)
    a_last = "".join(f", max(a_{f}) FILTER (WHERE recency = 1) AS a_{f}" for f in rule.earlier_shown)
    groups = partition(rule)
    values = [f"a_{f} AS value_a_{f}" for f in rule.earlier_shown]
    values += [f"{carried.cols[ir.Field(f)]} AS value_b_{f}" for f in rule.later_shown]
    values += [f"{as_double('gap_us')} / {as_double('3600000000')} AS value_gap_hours"]
    values += ["earlier_events AS value_earlier_events"]
    return f"""
WITH {_numbered(rule, events, entities, computed, carried)}, pairs AS (
  SELECT {partition(rule, "b")}, b.seq AS b_seq, a.seq AS a_seq, a.source AS a_source,
    a.event_id AS a_event_id, a.ts AS a_ts, {micros_between("b.ts", "a.ts")} AS gap_us{a_cols},
    row_number() OVER (PARTITION BY {partition(rule, "b")}, b.seq ORDER BY a.seq DESC) AS recency
  FROM numbered AS b
  JOIN (SELECT * FROM numbered WHERE is_first) AS a
    ON {same_group(rule, "a", "b")} AND a.seq < b.seq
    AND a.ts > b.ts - INTERVAL '{rule.within_us} microseconds'
  WHERE ({then})
), linked AS (
  SELECT {groups}, b_seq, count(*) AS earlier_events, min(a_ts) AS first_ts,
    list(a_source ORDER BY a_seq) AS a_sources, list(a_event_id ORDER BY a_seq) AS a_ids,
    max(gap_us) FILTER (WHERE recency = 1) AS gap_us{a_last}
  FROM pairs
  GROUP BY {groups}, b_seq
), tested AS (
  SELECT n.*, l.* EXCLUDE ({groups}, b_seq), l.b_seq IS NOT NULL AS hit
  FROM numbered AS n
  LEFT JOIN linked AS l ON {same_group(rule, "l", "n")} AND l.b_seq = n.seq
), {fired_cte(rule)}
SELECT {groups}, source, event_id, ts, first_ts,
  list_concat(a_sources, [source]) AS evidence_sources,
  list_concat(a_ids, [event_id]) AS evidence,
  {", ".join(values)}
FROM fired
"""


def _numbered(rule: SequenceRule, events: str, entities: str, computed: str, carried: Carried) -> str:
    """The numbered events, or with the account view the numbered legs (``match`` already chose
    their events)."""
    if rule.accounts is None:
        return numbered_ctes(rule, events, entities, computed, carried, rule.first)
    incoming = rule.accounts.incoming
    legs = legs_ctes(
        from_events(events, entities, rule.match, incoming),
        event_sql(rule.match),
        event_sql(incoming),
        "IS NOT DISTINCT FROM",
    )
    legged = replace(rule, match=ir.TRUE)
    return f"{legs}, {numbered_ctes(legged, events, entities, computed, carried, rule.first, rows='legs')}"
