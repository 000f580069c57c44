"""The DuckDB engine: each rule becomes one SQL statement over the events table.

Each kind's statement is built by its own module of this package (``BUILDERS``); ``compile_rule``
pretty-prints it, and golden files under ``tests/golden/sql`` keep what it gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import sqlglot

from flagstone.engines.base import Engine
from flagstone.engines.duckdb.condition import condition_sql
from flagstone.engines.duckdb.deviation import deviation_sql
from flagstone.engines.duckdb.dormancy import dormancy_sql
from flagstone.engines.duckdb.graph import graph_sql
from flagstone.engines.duckdb.model import model_sql
from flagstone.engines.duckdb.sequence import sequence_sql
from flagstone.engines.duckdb.sql import counts_query
from flagstone.engines.duckdb.window import window_sql
from flagstone.engines.profiles import PRECOMPUTED, count_profiles
from flagstone.engines.rows import row_finding
from flagstone.errors import UnsupportedError
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.condition import ConditionRule
from flagstone.rules.kinds.deviation import DeviationRule
from flagstone.rules.kinds.dormancy import DormancyRule
from flagstone.rules.kinds.graph import GraphRule
from flagstone.rules.kinds.model import ModelRule, detect
from flagstone.rules.kinds.sequence import SequenceRule
from flagstone.rules.kinds.window import WindowRule


def compile_rule(rule: ir.Rule, *, events: str = "events", entities: str = "entities") -> str:
    """The SQL statement for one rule, pretty-printed (golden files keep these)."""
    build = BUILDERS.get(type(rule))
    if build is None:
        raise UnsupportedError(rule.meta.id, f"the {rule.meta.kind} rule kind", "duckdb")
    raw = build(rule, events, entities)
    return sqlglot.transpile(raw, read="duckdb", write="duckdb", pretty=True)[0]


# Each rule kind's statement builder: (rule, events table, entities table) -> SQL text.
# A registered kind missing here is refused with UnsupportedError (tests/test_kind_registry.py).
BUILDERS: dict[type, Callable[[Any, str, str], str]] = {
    ConditionRule: condition_sql,
    WindowRule: window_sql,
    GraphRule: graph_sql,
    SequenceRule: sequence_sql,
    DeviationRule: deviation_sql,
    DormancyRule: dormancy_sql,
    ModelRule: model_sql,
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
            if isinstance(rule, ModelRule):  # candidates: the model scores them here, as on every engine
                return detect(rule, self.con.sql(sql).to_arrow_table())
            cursor = self.con.execute(sql)
        except duckdb.Error as exc:
            raise RuntimeError(f"{exc}\n-- statement:\n{sql}") from exc
        names = [d[0] for d in cursor.description]
        return [row_finding(rule, dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def _count_profiles(self, rule: ir.Rule) -> dict[str, str]:
        def store(table: str, query: str) -> None:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")

        return count_profiles(rule, self.events, self._profile_tables, counts_query, store)


__all__ = ["BUILDERS", "DuckDBEngine", "compile_rule"]
