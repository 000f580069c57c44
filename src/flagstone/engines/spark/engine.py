"""The Apache Spark engine: each rule becomes one Spark SQL statement over two temporary views.

The events view has the canonical columns (``ts`` a TIMESTAMP_NTZ, decimals DECIMAL(18,4), ``attrs``
JSON text); the entities view the reference columns plus ``batch_id`` (the latest load wins). Each
kind's statement is built by its own module of this package (``BUILDERS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from flagstone.engines.base import Engine
from flagstone.engines.profiles import PRECOMPUTED, count_profiles
from flagstone.engines.rows import row_finding
from flagstone.engines.spark.condition import condition_sql
from flagstone.engines.spark.deviation import deviation_sql
from flagstone.engines.spark.dormancy import dormancy_sql
from flagstone.engines.spark.graph import TYPOLOGIES, graph_sql
from flagstone.engines.spark.model import model_sql
from flagstone.engines.spark.sequence import sequence_sql
from flagstone.engines.spark.sql import check_expr, counts_query
from flagstone.engines.spark.window import window_sql
from flagstone.errors import UnsupportedError
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.condition import ConditionRule
from flagstone.rules.kinds.deviation import DeviationRule
from flagstone.rules.kinds.dormancy import DormancyRule
from flagstone.rules.kinds.graph.rule import GraphRule
from flagstone.rules.kinds.model import SCHEMA, ModelRule, detect
from flagstone.rules.kinds.sequence import SequenceRule
from flagstone.rules.kinds.window import WindowRule


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, spark: Any, *, events: str = "events", entities: str = "entities") -> None:
        self.spark = spark  # a pyspark.sql.SparkSession; not imported here so the core needs no pyspark
        self.events = events
        self.entities = entities
        self._profile_views: dict[str, str] = {}  # counts query -> cached temporary view

    def check_supported(self, rule: ir.Rule) -> None:
        rule_id = rule.meta.id
        if type(rule) not in BUILDERS:
            raise UnsupportedError(rule_id, f"the {rule.meta.kind} rule kind", "spark")
        if isinstance(rule, GraphRule) and rule.typology not in TYPOLOGIES:
            raise UnsupportedError(rule_id, f"the {rule.typology} typology", "spark")
        profile_matches = [p.match for p in ir.rule_profiles(rule)]
        check_expr(rule_id, *ir.rule_expressions(rule), *profile_matches)

    def compile(self, rule: ir.Rule) -> str:
        self.check_supported(rule)
        return BUILDERS[type(rule)](rule, self.events, self.entities)

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
        if isinstance(rule, ModelRule):  # candidates: the model scores them here, as on every engine
            return detect(rule, pa.Table.from_pylist([row.asDict() for row in rows], schema=SCHEMA))
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


# Each supported rule kind's statement builder: (rule, events view, entities view) -> SQL text.
# A registered kind missing here is refused with UnsupportedError (tests/test_kind_registry.py).
BUILDERS: dict[type, Callable[[Any, str, str], str]] = {
    ConditionRule: condition_sql,
    WindowRule: window_sql,
    GraphRule: graph_sql,
    SequenceRule: sequence_sql,
    DormancyRule: dormancy_sql,
    DeviationRule: deviation_sql,
    ModelRule: model_sql,
}


__all__ = ["BUILDERS", "SparkEngine"]
