"""The DuckDB engine: each rule becomes one SQL statement over the events table.

Window rules use a frame that is exact under ties: events are numbered per group in
``(ts, event_id, source)`` order (``seq``); a RANGE frame over ``ts`` finds how many events fall in
``(t - W, t]``; from that the first ``seq`` in the window follows, and a ROWS frame whose start
varies per row (``back`` rows before the current one) computes every aggregate over exactly the
events up to and including the current one. See ``docs/rules.md`` for the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from flagstone.engines.base import Engine
from flagstone.engines.duckdb_deviation import deviation_sql
from flagstone.engines.duckdb_dormancy import dormancy_sql
from flagstone.engines.duckdb_graph import graph_sql
from flagstone.engines.duckdb_profiles import counts_query, entity_joins
from flagstone.engines.duckdb_sequence import sequence_sql
from flagstone.engines.duckdb_steps import ORDER
from flagstone.engines.duckdb_steps import event_leaf as _event_leaf
from flagstone.engines.profiles import PRECOMPUTED, count_profiles
from flagstone.engines.rows import (
    entity_column,
    episode_last_seq,
    fewest_events,
    grouped_aggregate_sql,
    having_entities,
    having_leaf,
    row_finding,
)
from flagstone.engines.sql import to_sql
from flagstone.errors import UnsupportedError
from flagstone.rules import ir
from flagstone.rules.finding import Finding


def _ident(name: str) -> str:
    return exp.to_identifier(name, quoted=not name.isidentifier()).sql("duckdb")


def _sql(node: ir.Expr, leaf: Any = _event_leaf) -> str:
    return to_sql(node, leaf).sql(dialect="duckdb")


def _from_events(events: str, entities: str, *exprs: ir.Expr) -> str:
    return f"FROM {events} AS e {entity_joins(events, entities, *exprs)}"


def compile_rule(rule: ir.Rule, *, events: str = "events", entities: str = "entities") -> str:
    """The SQL statement for one rule, pretty-printed (golden files keep these)."""
    build = SQL_BUILDERS.get(type(rule))
    if build is None:
        raise UnsupportedError(rule.meta.id, f"the {rule.meta.kind} rule kind", "duckdb")
    raw = build(rule, events, entities)
    return sqlglot.transpile(raw, read="duckdb", write="duckdb", pretty=True)[0]


def _group_select(rule: ir.Rule) -> tuple[str, str, str]:
    cols = ", ".join(f"e.{g} AS group_{g}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{g} IS NOT NULL" for g in rule.group_by)
    partition = ", ".join(f"group_{g}" for g in rule.group_by)
    return cols, not_null, partition


def _condition_sql(rule: ir.ConditionRule, events: str, entities: str) -> str:
    cols, not_null, partition = _group_select(rule)
    shown = [ir.shown_leaf(name) for name in rule.shown_fields]
    shown_cols = "".join(
        f", {_sql(node)} AS {_ident('value_' + name)}" for name, node in zip(rule.shown_fields, shown, strict=True)
    )
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{shown_cols},
    coalesce({_sql(rule.condition)}, FALSE) AS hit
  {_from_events(events, entities, rule.match, rule.condition)}
  WHERE ({_sql(rule.match)}) AND {not_null}
), tested AS (
  SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS was_hit
  FROM matched
)
SELECT * EXCLUDE (hit, was_hit), ts AS first_ts, [source] AS evidence_sources, [event_id] AS evidence
FROM tested
WHERE hit AND NOT was_hit
"""


def _window_sql(rule: ir.WindowRule, events: str, entities: str) -> str:
    cols, not_null, partition = _group_select(rule)
    row_exprs = (rule.match, rule.having, *(a.arg for _, a in rule.aggregates if a.arg is not None))
    arg_cols = "".join(
        f", {_sql(agg.arg)} AS {_ident('arg_' + name)}" for name, agg in rule.aggregates if agg.arg is not None
    )
    entity_cols = "".join(f", {_sql(n)} AS {entity_column(n)}" for n in having_entities(rule))
    aggs = ", ".join(f"{_aggregate_sql(name, agg)} AS agg_{name}" for name, agg in rule.aggregates)
    last_seq = "seq"  # the evidence ends at the firing event ...
    values = ", ".join(f"f.agg_{name} AS value_{name}" for name, _ in rule.aggregates)
    if rule.evidence == "episode":
        # ... or at the episode's last event: the one before the next miss, else the group's last.
        last_seq = episode_last_seq(partition)
        values = ", ".join(
            f"{grouped_aggregate_sql(agg, 'm.' + _ident('arg_' + name))} AS value_{name}"
            for name, agg in rule.aggregates
        )
    # Groups whose windows never hold enough events cannot fire: skip their (costly) aggregates.
    candidates = ""
    if (least := fewest_events(rule)) > 1:
        candidates = (
            f" WHERE ({partition}) IN (SELECT ({partition}) FROM numbered "
            f"WHERE seq - window_first_seq + 1 >= {least})"
        )
    # The RANGE frame is (t - W, t]: timestamps are whole microseconds, so W - 1us PRECEDING.
    reach = f"INTERVAL '{rule.window_us - 1} microseconds'"
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{arg_cols}{entity_cols}
  {_from_events(events, entities, *row_exprs)}
  WHERE ({_sql(rule.match)}) AND {not_null}
), numbered AS (
  SELECT *,
    row_number() OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS seq,
    count(*) OVER (PARTITION BY {partition} ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {partition} ORDER BY ts RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT *, {aggs}
  FROM (SELECT *, seq - window_first_seq AS back FROM numbered{candidates})
  WINDOW w AS (PARTITION BY {partition} ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT *, coalesce({_sql(rule.having, having_leaf)}, FALSE) AS hit FROM measured
), runs AS (
  SELECT *, {last_seq} AS last_seq FROM tested
), fired AS (
  SELECT * FROM (
    SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY seq) AS was_hit FROM runs
  ) WHERE hit AND NOT was_hit
)
SELECT {", ".join(f"f.group_{g}" for g in rule.group_by)}, f.source, f.event_id, f.ts,
  {values},
  min(m.ts) AS first_ts,
  list(m.source ORDER BY m.seq) AS evidence_sources,
  list(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON {" AND ".join(f"m.group_{g} = f.group_{g}" for g in rule.group_by)}
  AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
"""


def _aggregate_sql(name: str, agg: ir.Aggregate) -> str:
    """One aggregate over the window ``w``."""
    arg = _ident(f"arg_{name}")
    if agg.function == "count":
        return "count(*) OVER w" if agg.arg is None else f"count({arg}) OVER w"
    if agg.function == "count_distinct":
        return f"count(DISTINCT {arg}) OVER w"
    if agg.function == "avg":
        # sum / count as a float, the same on every engine (DuckDB's own avg may differ in the last bit).
        return f"(CAST(sum({arg}) OVER w AS DOUBLE) / count({arg}) OVER w)"
    return f"{agg.function}({arg}) OVER w"


# Each rule kind's statement builder: (rule, events table, entities table) -> SQL text.
SQL_BUILDERS: dict[type, Callable[[Any, str, str], str]] = {
    ir.ConditionRule: _condition_sql,
    ir.WindowRule: _window_sql,
    ir.GraphRule: graph_sql,
    ir.SequenceRule: sequence_sql,
    ir.DeviationRule: deviation_sql,
    ir.DormancyRule: dormancy_sql,
}


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, events: str = "events", entities: str = "entities"):
        self.con = con
        self.events = events
        self.entities = entities
        self._profile_tables: dict[str, str] = {}  # counts query -> temporary table

    def compile(self, rule: ir.Rule) -> str:
        return compile_rule(rule, events=self.events, entities=self.entities)

    def execute(self, rule: ir.Rule) -> list[Finding]:
        token = PRECOMPUTED.set(self._count_profiles(rule))
        try:
            sql = self.compile(rule)
        finally:
            PRECOMPUTED.reset(token)
        try:
            cursor = self.con.execute(sql)
        except duckdb.Error as exc:
            raise RuntimeError(f"{exc}\n-- statement:\n{sql}") from exc
        names = [d[0] for d in cursor.description]
        return [row_finding(rule, dict(zip(names, row, strict=True))) for row in cursor.fetchall()]


    def _count_profiles(self, rule: ir.Rule) -> dict[str, str]:
        def store(table: str, query: str) -> None:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")

        return count_profiles(rule, self.events, self._profile_tables, counts_query, store)


__all__ = ["Decimal", "DuckDBEngine", "compile_rule"]
