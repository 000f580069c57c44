"""Spark statement for the ``sequence`` kind, a translation of ``engines/duckdb/sequence.py``.

Candidate pairs come from one self-join of the group's events: A before B in event order
(``seq``), A inside B's window ``(ts(B) - T, ts(B)]`` (compared as integer microseconds), A passing
``first``, the pair passing ``then``. The latest A (``recency`` 1) gives the values; the As'
ids are gathered in ``seq`` order by sorting structs. Cost grows with the number of
(A candidate, B) pairs within T per group: about N x (A candidates per group within T), plus a
few sorts of the events. With the account view the statement reads the legs of
``engines/legs.py`` instead of the events.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from flagstone.engines.legs import legs_ctes
from flagstone.engines.spark.sql import entity_joins, event_leaf, spark_sql
from flagstone.engines.spark.steps import (
    Carried,
    as_double,
    fired_cte,
    micros_between,
    numbered_ctes,
    partition,
    same_group,
    sorted_list,
)
from flagstone.rules import ir
from flagstone.rules.kinds.sequence import EARLIER, SequenceRule


def sequence_sql(rule: SequenceRule, events: str, entities: str) -> str:
    carried = Carried(rule.then, *(ir.Field(f) for f in rule.earlier_read))

    def earlier(name: str) -> exp.Expression:
        # a.<field> in `then` is the carried column of that field on the A side of the pair.
        return exp.column(carried.cols[ir.Field(name.removeprefix(EARLIER))], table="a")

    then = carried.sql(rule.then, "b", earlier)
    computed = f", coalesce({spark_sql(rule.first, event_leaf)}, FALSE) AS is_first"
    # A's shown fields as shown_<field>: a_source and a_event_id already name A's identity.
    a_cols = "".join(f", a.{carried.cols[ir.Field(f)]} AS shown_{f}" for f in rule.earlier_shown)
    a_last = "".join(f", max(shown_{f}) FILTER (WHERE recency = 1) AS shown_{f}" for f in rule.earlier_shown)
    a_keep = "".join(f", l.shown_{f}" for f in rule.earlier_shown)
    groups = partition(rule)
    lists = sorted_list("a_seq", "a_source", "a_event_id")
    values = [f"shown_{f} AS value_a_{f}" for f in rule.earlier_shown]
    values += [f"{carried.cols[ir.Field(f)]} AS value_b_{f}" for f in rule.later_shown]
    values += [f"{as_double('gap_us')} / {as_double('3600000000')} AS value_gap_hours"]
    values += ["earlier_events AS value_earlier_events"]
    return f"""
WITH {_numbered(rule, events, entities, computed, carried)}, pairs AS (
  SELECT {partition(rule, "b")}, b.seq AS b_seq, a.seq AS a_seq, a.source AS a_source,
    a.event_id AS a_event_id, a.ts AS a_ts, {micros_between("b.ts_us", "a.ts_us")} AS gap_us{a_cols},
    row_number() OVER (PARTITION BY {partition(rule, "b")}, b.seq ORDER BY a.seq DESC) AS recency
  FROM numbered AS b
  JOIN (SELECT * FROM numbered WHERE is_first) AS a
    ON {same_group(rule, "a", "b")} AND a.seq < b.seq
    AND a.ts_us > b.ts_us - {rule.within_us}
  WHERE ({then})
), linked AS (
  SELECT {groups}, b_seq, count(*) AS earlier_events, min(a_ts) AS first_ts,
    {lists["a_source"]} AS a_sources, {lists["a_event_id"]} AS a_ids,
    max(gap_us) FILTER (WHERE recency = 1) AS gap_us{a_last}
  FROM pairs
  GROUP BY {groups}, b_seq
), tested AS (
  SELECT n.*, l.earlier_events, l.first_ts, l.a_sources, l.a_ids, l.gap_us{a_keep},
    l.b_seq IS NOT NULL AS hit
  FROM numbered AS n
  LEFT JOIN linked AS l ON {same_group(rule, "l", "n")} AND l.b_seq = n.seq
), {fired_cte(rule)}
SELECT {groups}, source, event_id, ts, first_ts,
  concat(a_sources, array(source)) AS evidence_sources,
  concat(a_ids, array(event_id)) AS evidence,
  {", ".join(values)}
FROM fired
"""


def _numbered(rule: SequenceRule, events: str, entities: str, computed: str, carried: Carried) -> str:
    """The numbered events, or with the account view the numbered legs (``match`` already chose
    their events)."""
    if rule.accounts is None:
        return numbered_ctes(rule, events, entities, computed, carried, rule.first)
    incoming = rule.accounts.incoming
    source = f"FROM {events} AS e {entity_joins(events, entities, rule.match, incoming)}"
    legs = legs_ctes(source, spark_sql(rule.match), spark_sql(incoming), "<=>")
    legged = replace(rule, match=ir.TRUE)
    return f"{legs}, {numbered_ctes(legged, events, entities, computed, carried, rule.first, rows='legs')}"
