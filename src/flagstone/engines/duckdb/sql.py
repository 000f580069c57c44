"""DuckDB joins that give each event its actor's / counterparty's reference data and profiles.

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
    from flagstone.engines.duckdb_steps import event_leaf

    match = to_sql(profile.match, event_leaf).sql(dialect="duckdb")
    return (
        f"SELECT e.actor AS entity, count(*) FILTER (WHERE coalesce({match}, FALSE)) AS n "
        f"FROM {events} AS e WHERE e.actor IS NOT NULL GROUP BY e.actor"
    )

