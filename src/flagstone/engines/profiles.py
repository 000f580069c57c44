"""What every SQL engine shares about rule profiles (``docs/rules.md``, Profiles).

A profile is counted once per scan into a table; statements compiled while an engine runs read
that table, statements compiled alone (golden files) count inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType

from flagstone.rules import ir

# Ratios are truncated to 4 decimal places with integer arithmetic, so that every engine and the
# oracle get the same exact decimal: count / (m2 / 2) = (count * 20000 // m2) / 10000.
SCALE = 20_000


def profile_alias(node: ir.EntityField) -> str:
    return f"{node.role}_profile_{node.name}"


# Counts an engine has already stored as tables, by query text. A scan runs many rules over the
# same events, and rules share profiles: each is then counted once per scan, not once per rule
# and role.
PRECOMPUTED: ContextVar[Mapping[str, str]] = ContextVar("precomputed_profile_counts", default=MappingProxyType({}))
