"""DuckDB joins that give each event its actor's / counterparty's reference data and profiles.

Reference data comes from the entities table (latest load wins). A rule's ``profiles`` are counted
over the whole events relation the statement reads: one ``GROUP BY actor`` per profile and role,
plus, for relative profiles, a one-row median over every actor (``docs/rules.md``, Profiles).
"""

from __future__ import annotations

from typing import cast

import sqlglot
from sqlglot import exp

from flagstone.engines.profiles import PRECOMPUTED, SCALE, profile_alias
from flagstone.engines.sql import to_sql, walk
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
    nodes = {n for e in exprs for n in walk(e) if isinstance(n, ir.EntityField)}
    roles = sorted({n.role for n in nodes if n.profile is None})
    profiled = sorted((n for n in nodes if n.profile is not None), key=profile_alias)
    joins = [
        # Latest load of an entity wins, so a re-loaded profile cannot duplicate events.
        f"LEFT JOIN (SELECT * FROM {entities} QUALIFY row_number() OVER "
        f"(PARTITION BY entity ORDER BY batch_id DESC) = 1) AS {role}_entity ON {role}_entity.entity = e.{role}"
        for role in roles
    ]
    medians: set[str] = set()
    for node in profiled:
        assert node.profile is not None
        query = counts_query(events, node.profile)
        counts = PRECOMPUTED.get().get(query, f"({query})")
        joins.append(f"LEFT JOIN {counts} AS {profile_alias(node)} ON {profile_alias(node)}.entity = e.{node.role}")
        if node.profile.relative and node.name not in medians:
            medians.add(node.name)
            joins.append(
                f"CROSS JOIN (SELECT CAST(2 * median(n) AS BIGINT) AS m2 FROM {counts}) AS profile_median_{node.name}"
            )
    return " ".join(joins)


def counts_query(events: str, profile: ir.Profile) -> str:
    """Per actor of any event: how many of its events the profile counts (0 for none)."""
    from flagstone.engines.duckdb_steps import event_leaf

    match = to_sql(profile.match, event_leaf).sql(dialect="duckdb")
    return (
        f"SELECT e.actor AS entity, count(*) FILTER (WHERE coalesce({match}, FALSE)) AS n "
        f"FROM {events} AS e WHERE e.actor IS NOT NULL GROUP BY e.actor"
    )

