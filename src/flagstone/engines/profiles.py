"""What every SQL engine shares about rule profiles (``docs/rules.md``, Profiles).

A profile is counted once per scan into a table; statements compiled while an engine runs read
that table, statements compiled alone (golden files) count inline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from types import MappingProxyType

from flagstone.rules import ir
from flagstone.rules.ir import walk

# Ratios are truncated to 4 decimal places with integer arithmetic, so that every engine and the
# oracle get the same exact decimal: count / (m2 / 2) = (count * 20000 // m2) / 10000.
SCALE = 20_000


def profile_alias(node: ir.EntityField) -> str:
    return f"{node.role}_profile_{node.name}"


# Counts an engine has already stored as tables, by query text. A scan runs many rules over the
# same events, and rules share profiles: each is then counted once per scan, not once per rule
# and role.
PRECOMPUTED: ContextVar[Mapping[str, str]] = ContextVar("precomputed_profile_counts", default=MappingProxyType({}))


def entity_joins(
    events: str,
    exprs: tuple[ir.Expr, ...],
    *,
    latest_entities: str,
    counts_query: Callable[[str, ir.Profile], str],
    twice_median: str,
) -> str:
    """The joins every ``actor.x`` / ``counterparty.x`` in ``exprs`` needs, on events aliased ``e``,
    in one engine's dialect: ``latest_entities`` selects each entity's latest load, ``counts_query``
    counts a profile per actor (column ``n``), ``twice_median`` is 2 × the median of ``n`` as an
    exact BIGINT."""
    nodes = {n for x in exprs for n in walk(x) if isinstance(n, ir.EntityField)}
    roles = sorted({n.role for n in nodes if n.profile is None})
    profiled = sorted((n for n in nodes if n.profile is not None), key=profile_alias)
    # The latest load of an entity wins, so a re-loaded entity cannot duplicate events.
    joins = [f"LEFT JOIN ({latest_entities}) AS {role}_entity ON {role}_entity.entity = e.{role}" for role in roles]
    medians: set[str] = set()
    for node in profiled:
        assert node.profile is not None
        query = counts_query(events, node.profile)
        counts = PRECOMPUTED.get().get(query, f"({query})")
        joins.append(f"LEFT JOIN {counts} AS {profile_alias(node)} ON {profile_alias(node)}.entity = e.{node.role}")
        if node.profile.relative and node.name not in medians:
            medians.add(node.name)
            joins.append(f"CROSS JOIN (SELECT {twice_median} AS m2 FROM {counts}) AS profile_median_{node.name}")
    return " ".join(joins)


def count_profiles(
    rule: ir.Rule,
    events: str,
    counted: MutableMapping[str, str],
    counts_query: Callable[[str, ir.Profile], str],
    store: Callable[[str, str], None],
) -> dict[str, str]:
    """Store the counts of the rule's profiles not yet in ``counted`` (counts query -> table) with
    ``store(table, query)``; an engine keeps ``counted`` while it runs, since the events do not change
    meanwhile (a new engine counts afresh). Returns what ``PRECOMPUTED`` should hold."""
    for profile in sorted(ir.rule_profiles(rule), key=lambda p: p.name):
        query = counts_query(events, profile)
        if query not in counted:
            table = "flagstone_profile_" + hashlib.sha256(query.encode()).hexdigest()[:16]
            store(table, query)
            counted[query] = table
    return dict(counted)
