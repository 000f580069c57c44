"""Spark SQL statement for the ``model`` kind: the DuckDB statement of engines/detector.py,
transpiled, over the rule's matched events as Spark's own expressions select them."""

from __future__ import annotations

import re

import sqlglot

from flagstone.engines.detector import MATCHED, template
from flagstone.engines.spark.sql import entity_joins, micros, spark_sql
from flagstone.rules.kinds.model import ModelRule


def model_sql(rule: ModelRule, events: str, entities: str) -> str:
    matched = (
        "(SELECT e.source, e.event_id, e.ts, e.actor, e.counterparty, e.amount, e.kind, e.channel "
        f"FROM {events} AS e {entity_joins(events, entities, rule.match)} "
        f"WHERE coalesce({spark_sql(rule.match)}, FALSE))"
    )
    body = sqlglot.transpile(template(rule.window_us), read="duckdb", write="spark")[0]
    # Spark has no epoch_us: the exact conversion of a TIMESTAMP_NTZ the other Spark statements use.
    body = re.sub(r"EPOCH_US\(([\w.]+)\)", lambda m: micros(m.group(1)), body)
    return body.replace(MATCHED, matched)
