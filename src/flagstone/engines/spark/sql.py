"""Rule expressions as Spark SQL text: the shared ``to_sql`` tree, adjusted where Spark differs.

Spark's LIKE treats ``\\`` as an escape character while the rule language has none, so every LIKE
gets an ESCAPE character that does not occur in its pattern. JSON attributes are read with
``get_json_object``; only plain key names are accepted (see ``check_expr``). Profiles are joined as
on DuckDB (``engines/duckdb/sql.py``), with the same integer arithmetic for relative ones.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from flagstone.engines import profiles
from flagstone.engines.profiles import SCALE, profile_alias
from flagstone.engines.sql import Leaf, to_sql, walk
from flagstone.errors import UnsupportedError
from flagstone.rules import ir

DIALECT = "spark"
ORDER = "ts, event_id, source"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Escape characters tried in turn for LIKE: control characters no real pattern holds.
_ESCAPES = "\x01\x02\x03\x04\x05\x06\x07"


def ident(name: str) -> str:
    return exp.to_identifier(name, quoted=not name.isidentifier()).sql(DIALECT)


def event_leaf(node: ir.Expr) -> exp.Expression:
    """Leaves as seen from the events view ``e`` joined with ``actor_entity`` / ``counterparty_entity``."""
    if isinstance(node, ir.Field):
        return exp.column(node.name, table="e")
    if isinstance(node, ir.Attr):
        path = exp.Literal.string(f"$.{node.name}")
        return exp.Anonymous(this="get_json_object", expressions=[exp.column("attrs", table="e"), path])
    if isinstance(node, ir.EntityField):
        if node.profile is not None:
            return _profile_value(node)
        return exp.column(node.name, table=f"{node.role}_entity")
    raise TypeError(f"{node!r} is not available on events")


def _profile_value(node: ir.EntityField) -> exp.Expression:
    assert node.profile is not None
    # An account that is no event's actor counts 0; an event without that role reads NULL.
    count = f"coalesce({profile_alias(node)}.n, 0)"
    known = f"e.{node.role} IS NOT NULL"
    if not node.profile.relative:
        text = f"CASE WHEN {known} THEN {count} END"
    else:
        m2 = f"profile_median_{node.name}.m2"
        ratio = f"CAST(({count} * {SCALE}) DIV {m2} AS DECIMAL(18, 0)) * 0.0001"
        text = f"CASE WHEN {known} AND {m2} > 0 THEN {ratio} END"
    return exp.maybe_parse(text, dialect=DIALECT)


def spark_sql(node: ir.Expr, leaf: Leaf = event_leaf) -> str:
    tree = to_sql(node, leaf)
    return tree.transform(_escape_like).sql(dialect=DIALECT)


def _escape_like(node: exp.Expression) -> Any:
    if isinstance(node, exp.Like) and not isinstance(node.parent, exp.Escape):
        pattern = node.expression.name
        escape = next(c for c in _ESCAPES if c not in pattern)
        return exp.Escape(this=node.copy(), expression=exp.Literal.string(escape))
    return node


def check_expr(rule_id: str, *exprs: ir.Expr | None) -> None:
    """Raise UnsupportedError for expression features the Spark engine cannot express exactly."""
    for e in exprs:
        if e is None:
            continue
        for n in walk(e):
            if isinstance(n, ir.Attr) and not _PLAIN_KEY.match(n.name):
                raise UnsupportedError(rule_id, f"the attribute key {n.name!r} (not a plain name)", "spark")
            if isinstance(n, ir.Like) and all(c in n.pattern for c in _ESCAPES):
                raise UnsupportedError(rule_id, "a LIKE pattern holding every control character", "spark")


def entity_joins(events: str, entities: str, *exprs: ir.Expr) -> str:
    """The joins every ``actor.x`` / ``counterparty.x`` in ``exprs`` needs, on events aliased ``e``."""
    latest = (
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY entity ORDER BY batch_id DESC) "
        f"AS entity_rank FROM {entities}) WHERE entity_rank = 1"
    )
    # percentile is exact here: (a + b) / 2 of integers below 2^52 is exact in a double.
    twice_median = "CAST(2 * percentile(n, 0.5) AS BIGINT)"
    return profiles.entity_joins(
        events, exprs, latest_entities=latest, counts_query=counts_query, twice_median=twice_median
    )


def counts_query(events: str, profile: ir.Profile) -> str:
    """Per actor of any event: how many of its events the profile counts (0 for none)."""
    match = spark_sql(profile.match)
    return (
        f"SELECT e.actor AS entity, count_if(coalesce({match}, FALSE)) AS n "
        f"FROM {events} AS e WHERE e.actor IS NOT NULL GROUP BY e.actor"
    )


def micros(column: str) -> str:
    """A TIMESTAMP_NTZ as whole microseconds since the epoch, exact in any session time zone
    (``timestampdiff`` is not: it converts through the session zone, so a DST change shifts it)."""
    interval = f"{column} - TIMESTAMP_NTZ'1970-01-01 00:00:00'"
    return f"CAST(CAST({interval} AS DECIMAL(20, 6)) * 1000000 AS BIGINT)"


def group_select(rule: ir.Rule) -> tuple[str, str, str]:
    """The group columns as selected, their not-NULL test, and the partition over them."""
    cols = ", ".join(f"e.{ident(g)} AS {ident('group_' + g)}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{ident(g)} IS NOT NULL" for g in rule.group_by)
    partition = ", ".join(ident(f"group_{g}") for g in rule.group_by)
    return cols, not_null, partition


def same_group(rule: ir.Rule, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{ident('group_' + g)} = {right}.{ident('group_' + g)}" for g in rule.group_by)
