"""How the DuckDB engine reads a rule's leaves: event fields and attributes of the events table
``e``, and the joins that give each event its actor's / counterparty's reference data and profiles.

Reference data comes from the entities table (latest load wins). A rule's ``profiles`` are counted
over the whole events relation the statement reads: one ``GROUP BY actor`` per profile and role,
plus, for relative profiles, a one-row median over every actor (``docs/rules.md``, Profiles).
"""

from __future__ import annotations

from typing import cast

import sqlglot
from sqlglot import exp

from flagstone.engines import profiles
from flagstone.engines.profiles import SCALE, profile_alias
from flagstone.engines.sql import to_sql
from flagstone.rules import ir

ORDER = "ts, event_id, source"


def profile_value(node: ir.EntityField) -> exp.Expression:
    assert node.profile is not None
    # An account that is no event's actor counts 0; an event without that role reads NULL.
    count = f"coalesce({profile_alias(node)}.n, 0)"
    known = f"e.{node.role} IS NOT NULL"
    if not node.profile.relative:
        return _parse(f"CASE WHEN {known} THEN {count} END")
    m2 = f"profile_median_{node.name}.m2"
    ratio = f"CAST(({count} * {SCALE}) // {m2} AS DECIMAL(18, 0)) * 0.0001"
    text = f"CASE WHEN {known} AND {m2} > 0 THEN {ratio} END"
    return _parse(text)


def _parse(text: str) -> exp.Expression:
    return cast(exp.Expression, sqlglot.parse_one(text, dialect="duckdb"))


def entity_joins(events: str, entities: str, *exprs: ir.Expr) -> str:
    """The joins every ``actor.x`` / ``counterparty.x`` in ``exprs`` needs, on events aliased ``e``."""
    latest = f"SELECT * FROM {entities} QUALIFY row_number() OVER (PARTITION BY entity ORDER BY batch_id DESC) = 1"
    return profiles.entity_joins(
        events, exprs, latest_entities=latest, counts_query=counts_query, twice_median="CAST(2 * median(n) AS BIGINT)"
    )


def counts_query(events: str, profile: ir.Profile) -> str:
    """Per actor of any event: how many of its events the profile counts (0 for none)."""
    match = to_sql(profile.match, event_leaf).sql(dialect="duckdb")
    return (
        f"SELECT e.actor AS entity, count(*) FILTER (WHERE coalesce({match}, FALSE)) AS n "
        f"FROM {events} AS e WHERE e.actor IS NOT NULL GROUP BY e.actor"
    )


def event_leaf(node: ir.Expr) -> exp.Expression:
    """Leaves as seen from the raw events table ``e`` joined with entity profiles."""
    if isinstance(node, ir.Field):
        return exp.column(node.name, table="e")
    if isinstance(node, ir.Attr):
        path = exp.Literal.string('$."' + node.name.replace('"', '\\"') + '"')
        return exp.Anonymous(this="json_extract_string", expressions=[exp.column("attrs", table="e"), path])
    if isinstance(node, ir.EntityField):
        if node.profile is not None:
            return profile_value(node)
        return exp.column(node.name, table=f"{node.role}_entity")
    raise TypeError(f"{node!r} is not available on events")


def event_sql(node: ir.Expr) -> str:
    """An expression over the raw event ``e`` and its profile joins."""
    return to_sql(node, event_leaf).sql(dialect="duckdb")


def ident(name: str) -> str:
    return exp.to_identifier(name, quoted=not name.isidentifier()).sql("duckdb")


def from_events(events: str, entities: str, *exprs: ir.Expr) -> str:
    """``FROM`` the events ``e`` with the entity joins ``exprs`` need."""
    return f"FROM {events} AS e {entity_joins(events, entities, *exprs)}"


def group_select(rule: ir.Rule) -> tuple[str, str, str]:
    """The group columns as selected, their not-NULL test, and the partition over them."""
    cols = ", ".join(f"e.{g} AS group_{g}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{g} IS NOT NULL" for g in rule.group_by)
    partition = ", ".join(f"group_{g}" for g in rule.group_by)
    return cols, not_null, partition
