"""Every rule kind, registered once.

A kind is one module (or, for ``graph``, one package) holding its typed form, the keys it adds to a
rule file and its plain-Python definition (the oracle), exported as ``KIND``. Adding a kind is
listed step by step in ``docs/architecture.md``; ``tests/test_kind_registry.py`` checks that every
registered kind has an oracle and, on every engine, a builder or an explicit refusal.
"""

from flagstone.rules.kinds import basket, condition, deviation, dormancy, graph, model, sequence, window
from flagstone.rules.reader import Oracle, RuleKind

# By the name rule files give in ``kind``, in the order ``--help`` texts and errors list them.
KINDS: dict[str, RuleKind] = {
    k.name: k
    for k in (
        condition.KIND,
        window.KIND,
        basket.KIND,
        graph.KIND,
        sequence.KIND,
        deviation.KIND,
        dormancy.KIND,
        model.KIND,
    )
}

# The typed rules the kinds build (a basket builds a window rule), each with its oracle.
ORACLES: dict[type, Oracle] = {k.rule: k.oracle for k in KINDS.values()}
RULE_TYPES: tuple[type, ...] = tuple(ORACLES)

__all__ = ["KINDS", "ORACLES", "RULE_TYPES", "RuleKind"]
