"""The Apache Spark engine: each rule becomes one Spark SQL statement over two temporary views.

The events view has the canonical columns (``ts`` a TIMESTAMP_NTZ, decimals DECIMAL(18,4), ``attrs``
JSON text); the entities view the reference columns plus ``batch_id`` (the latest load wins).

Window rules are exact under ties, as on DuckDB, but Spark has no window frame whose start varies per
row. Events are numbered per group in ``(ts, event_id, source)`` order (``seq``); two RANGE counts
over whole microseconds give the first ``seq`` inside ``(t - W, t]``; each event's aggregates are
then a GROUP BY over a self-join on the group with ``seq`` between that first one and its own.
That costs (events x events per window); groups whose windows can never hold enough events for
``having`` are dropped before the join.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flagstone.engines.base import Engine
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
from flagstone.engines.spark_deviation import deviation_sql
from flagstone.engines.spark_dormancy import dormancy_sql
from flagstone.engines.spark_graph import TYPOLOGIES, graph_sql
from flagstone.engines.spark_sequence import sequence_sql
from flagstone.engines.spark_sql import ORDER, check_expr, counts_query, entity_joins, ident, micros, spark_sql
from flagstone.errors import UnsupportedError
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.ir_graph import GraphRule


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, spark: Any, *, events: str = "events", entities: str = "entities") -> None:
        self.spark = spark  # a pyspark.sql.SparkSession; not imported here so the core needs no pyspark
        self.events = events
        self.entities = entities
        self._profile_views: dict[str, str] = {}  # counts query -> cached temporary view

    def check_supported(self, rule: ir.Rule) -> None:
        rule_id = rule.meta.id
        if type(rule) not in SQL_BUILDERS:
            raise UnsupportedError(rule_id, f"the {rule.meta.kind} rule kind", "spark")
        if isinstance(rule, GraphRule) and rule.typology not in TYPOLOGIES:
            raise UnsupportedError(rule_id, f"the {rule.typology} typology", "spark")
        profile_matches = [p.match for p in ir.rule_profiles(rule)]
        check_expr(rule_id, *ir.rule_expressions(rule), *profile_matches)

    def compile(self, rule: ir.Rule) -> str:
        self.check_supported(rule)
        return SQL_BUILDERS[type(rule)](rule, self.events, self.entities)

    def execute(self, rule: ir.Rule) -> list[Finding]:
        token = PRECOMPUTED.set(self._count_profiles(rule))
        try:
            sql = self.compile(rule)
        finally:
            PRECOMPUTED.reset(token)
        try:
            with _static_plan(self.spark, isinstance(rule, GraphRule) and rule.typology in PATH_TYPOLOGIES):
                rows = self.spark.sql(sql).collect()
        except Exception as exc:
            raise RuntimeError(f"{exc}\n-- statement:\n{sql}") from exc
        return [row_finding(rule, row.asDict()) for row in rows]

    def _count_profiles(self, rule: ir.Rule) -> dict[str, str]:
        def store(view: str, query: str) -> None:  # a cached view: computed once, read by each rule
            self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS {query}")
            self.spark.sql(f"CACHE TABLE {view}")

        return count_profiles(rule, self.events, self._profile_views, counts_query, store)


# Graph typologies whose statements grow paths or legs. Adaptive execution turns their joins into
# broadcast joins from the shuffled size of a path table, which is far smaller than the hash table
# built from it: on 4,000 edges it ran out of memory (cycle, stack) or took 3.5x as long
# (bipartite) as the static plan, whose shuffle joins are sized by spark.sql.shuffle.partitions.
PATH_TYPOLOGIES = frozenset({"cycle", "stack", "scatter_gather", "gather_scatter", "bipartite"})


@contextmanager
def _static_plan(spark: Any, wanted: bool) -> Iterator[None]:
    """Run with adaptive execution off when ``wanted``, restoring the session's setting after."""
    key = "spark.sql.adaptive.enabled"
    before = spark.conf.get(key) if wanted else None
    if wanted:
        spark.conf.set(key, "false")
    try:
        yield
    finally:
        if before is not None:
            spark.conf.set(key, before)


def _group_select(rule: ir.ConditionRule | ir.WindowRule) -> tuple[str, str, str]:
    cols = ", ".join(f"e.{ident(g)} AS {ident('group_' + g)}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{ident(g)} IS NOT NULL" for g in rule.group_by)
    partition = ", ".join(ident(f"group_{g}") for g in rule.group_by)
    return cols, not_null, partition


def _same_group(rule: ir.WindowRule, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{ident('group_' + g)} = {right}.{ident('group_' + g)}" for g in rule.group_by)


def condition_sql(rule: ir.ConditionRule, events: str, entities: str) -> str:
    cols, not_null, partition = _group_select(rule)
    shown = "".join(f", {spark_sql(ir.shown_leaf(n))} AS {ident('value_' + n)}" for n in rule.shown_fields)
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{shown},
    coalesce({spark_sql(rule.condition)}, FALSE) AS hit
  FROM {events} AS e {entity_joins(events, entities, rule.match, rule.condition)}
  WHERE ({spark_sql(rule.match)}) AND {not_null}
), tested AS (
  SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS was_hit FROM matched
)
SELECT *, ts AS first_ts, array(source) AS evidence_sources, array(event_id) AS evidence
FROM tested
WHERE hit AND NOT was_hit
"""


def window_sql(rule: ir.WindowRule, events: str, entities: str) -> str:
    cols, not_null, partition = _group_select(rule)
    row_exprs = (rule.match, rule.having, *(a.arg for _, a in rule.aggregates if a.arg is not None))
    arg_cols = "".join(
        f", {spark_sql(agg.arg)} AS {ident('arg_' + name)}" for name, agg in rule.aggregates if agg.arg is not None
    )
    having_entity = having_entities(rule)
    entity_names = [entity_column(n) for n in having_entity]
    entity_cols = "".join(f", {spark_sql(n)} AS {c}" for n, c in zip(having_entity, entity_names, strict=True))
    f_groups = ", ".join(f"f.{ident('group_' + g)}" for g in rule.group_by)

    aggs = ", ".join(
        f"{grouped_aggregate_sql(agg, 'm.' + ident('arg_' + name))} AS agg_{name}" for name, agg in rule.aggregates
    )
    entity_keep = "".join(f", first(f.{c}) AS {c}" for c in entity_names)
    last_seq = "seq"  # the evidence ends at the firing event ...
    values = ", ".join(f"first(f.agg_{name}) AS {ident('value_' + name)}" for name, _ in rule.aggregates)
    if rule.evidence == "episode":
        # ... or at the episode's last event: the one before the next miss, else the group's last.
        last_seq = episode_last_seq(partition)
        values = ", ".join(
            f"{grouped_aggregate_sql(agg, 'm.' + ident('arg_' + name))} AS {ident('value_' + name)}"
            for name, agg in rule.aggregates
        )
    # Groups whose windows never hold enough events cannot fire: skip their (costly) self-join.
    least = fewest_events(rule)
    # RANGE frames over whole microseconds: (t - W, t] is W - 1 PRECEDING to CURRENT ROW.
    reach = rule.window_us - 1
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {micros("e.ts")} AS ts_us, {cols}{arg_cols}{entity_cols}
  FROM {events} AS e {entity_joins(events, entities, *row_exprs)}
  WHERE ({spark_sql(rule.match)}) AND {not_null}
), numbered AS (
  SELECT *,
    row_number() OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS seq,
    count(*) OVER (PARTITION BY {partition} ORDER BY ts_us RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {partition} ORDER BY ts_us RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1 AS window_first_seq
  FROM matched
), candidates AS (
  SELECT * FROM (
    SELECT *, max(seq - window_first_seq + 1) OVER (PARTITION BY {partition}) AS widest FROM numbered
  ) WHERE widest >= {least}
), measured AS (
  SELECT {f_groups}, f.seq, first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
    first(f.window_first_seq) AS window_first_seq{entity_keep}, {aggs}
  FROM candidates AS f JOIN candidates AS m
    ON {_same_group(rule, "m", "f")} AND m.seq BETWEEN f.window_first_seq AND f.seq
  GROUP BY {f_groups}, f.seq
), tested AS (
  SELECT *, coalesce({spark_sql(rule.having, having_leaf)}, FALSE) AS hit FROM measured
), runs AS (
  SELECT *, {last_seq} AS last_seq FROM tested
), fired AS (
  SELECT * FROM (
    SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY seq) AS was_hit FROM runs
  ) WHERE hit AND NOT was_hit
)
SELECT {f_groups},
  first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
  {values},
  min(m.ts) AS first_ts,
  transform(sort_array(collect_list(struct(m.seq, m.source, m.event_id))), x -> x.source) AS evidence_sources,
  transform(sort_array(collect_list(struct(m.seq, m.source, m.event_id))), x -> x.event_id) AS evidence
FROM fired AS f
JOIN candidates AS m
  ON {_same_group(rule, "m", "f")} AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY {f_groups}, f.seq
"""


# Each supported rule kind's statement builder: (rule, events view, entities view) -> SQL text.
SQL_BUILDERS: dict[type, Callable[[Any, str, str], str]] = {
    ir.ConditionRule: condition_sql,
    ir.WindowRule: window_sql,
    ir.GraphRule: graph_sql,
    ir.SequenceRule: sequence_sql,
    ir.DormancyRule: dormancy_sql,
    ir.DeviationRule: deviation_sql,
}


__all__ = ["SparkEngine"]
