"""The oracle: a deliberately plain Python definition of every rule kind, which the engines must match.

It favours obviousness over speed (every window is recomputed from scratch). The expression
semantics are in ``evaluator``, each kind's own definition in its module of ``rules.kinds``; the
engines are tested against ``run_rule`` on random events and rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from flagstone.rules import ir
from flagstone.rules.evaluator import Entities, Event, with_profiles
from flagstone.rules.finding import Finding
from flagstone.rules.kinds import ORACLES


def run_rule(rule: ir.Rule, events: Iterable[Event], entities: Entities | None = None) -> list[Finding]:
    """Every finding of ``rule`` over ``events``, by the definitions in ``flagstone.rules.kinds``."""
    evs = list(events)
    return ORACLES[type(rule)](rule, evs, with_profiles(rule, evs, entities or {}))


__all__ = ["run_rule"]
