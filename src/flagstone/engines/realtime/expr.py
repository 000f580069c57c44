"""Rule expressions compiled to Python closures for the real-time scorer.

One builder per node type (the table at the bottom), each returning ``fn(event, aggregates)``. The
three-valued logic and numeric typing are the oracle's (``flagstone.rules.oracle``): the scorer
reuses its comparison and arithmetic primitives, so only the way a tree is walked differs.
Compiling once per rule, instead of walking the tree per event, is what keeps a decision in the
tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flagstone.rules import ir
from flagstone.rules.evaluator import _arith, _compare, like_regex
from flagstone.rules.evaluator import _attr as attr_value

Event = Mapping[str, Any]
Entities = Mapping[str, Mapping[str, Any]]
Compiled = Callable[[Event, Mapping[str, Any]], Any]


def compile_expr(node: ir.Expr, entities: Entities) -> Compiled:
    """``node`` as a closure; ``entities`` is read at call time, so it may be refreshed in place."""
    return _BUILDERS[type(node)](node, entities)


def _literal(node: ir.Literal, entities: Entities) -> Compiled:
    value = node.value
    return lambda e, a: value


def _field(node: ir.Field, entities: Entities) -> Compiled:
    name = node.name
    return lambda e, a: e.get(name)


def _attr(node: ir.Attr, entities: Entities) -> Compiled:
    name = node.name
    return lambda e, a: attr_value(e, name)


def _entity_field(node: ir.EntityField, entities: Entities) -> Compiled:
    role, name = node.role, node.name

    def read(e: Event, a: Mapping[str, Any]) -> Any:
        key = e.get(role)
        return entities.get(key, {}).get(name) if key is not None else None

    return read


def _aggregate_ref(node: ir.AggregateRef, entities: Entities) -> Compiled:
    name = node.name
    return lambda e, a: a[name]


def _not(node: ir.Not, entities: Entities) -> Compiled:
    operand = compile_expr(node.operand, entities)

    def run(e: Event, a: Mapping[str, Any]) -> Any:
        v = operand(e, a)
        return None if v is None else not v

    return run


def _negate(node: ir.Negate, entities: Entities) -> Compiled:
    operand = compile_expr(node.operand, entities)

    def run(e: Event, a: Mapping[str, Any]) -> Any:
        v = operand(e, a)
        return None if v is None else -v

    return run


def _logical(node: ir.Logical, entities: Entities) -> Compiled:
    left, right = compile_expr(node.left, entities), compile_expr(node.right, entities)
    if node.op == "and":

        def both(e: Event, a: Mapping[str, Any]) -> Any:
            x, y = left(e, a), right(e, a)
            if x is False or y is False:
                return False
            return None if x is None or y is None else True

        return both

    def either(e: Event, a: Mapping[str, Any]) -> Any:
        x, y = left(e, a), right(e, a)
        if x is True or y is True:
            return True
        return None if x is None or y is None else False

    return either


def _compare_node(node: ir.Compare, entities: Entities) -> Compiled:
    op, left, right = node.op, compile_expr(node.left, entities), compile_expr(node.right, entities)
    return lambda e, a: _compare(op, left(e, a), right(e, a))


def _arithmetic(node: ir.Arithmetic, entities: Entities) -> Compiled:
    op, left, right = node.op, compile_expr(node.left, entities), compile_expr(node.right, entities)
    return lambda e, a: _arith(op, left(e, a), right(e, a))


def _in_list(node: ir.InList, entities: Entities) -> Compiled:
    operand, negated = compile_expr(node.operand, entities), node.negated
    values = [lit.value for lit in node.values]

    def run(e: Event, a: Mapping[str, Any]) -> Any:
        v = operand(e, a)
        if v is None:
            return None
        return any(_compare("=", v, x) for x in values) != negated

    return run


def _is_null(node: ir.IsNull, entities: Entities) -> Compiled:
    operand, negated = compile_expr(node.operand, entities), node.negated
    return lambda e, a: (operand(e, a) is None) != negated


def _like(node: ir.Like, entities: Entities) -> Compiled:
    operand, negated, pattern = compile_expr(node.operand, entities), node.negated, like_regex(node.pattern)

    def run(e: Event, a: Mapping[str, Any]) -> Any:
        v = operand(e, a)
        return None if v is None else bool(pattern.fullmatch(v)) != negated

    return run


_BUILDERS: dict[type, Callable[[Any, Entities], Compiled]] = {
    ir.Literal: _literal,
    ir.Field: _field,
    ir.Attr: _attr,
    ir.EntityField: _entity_field,
    ir.AggregateRef: _aggregate_ref,
    ir.Not: _not,
    ir.Negate: _negate,
    ir.Logical: _logical,
    ir.Compare: _compare_node,
    ir.Arithmetic: _arithmetic,
    ir.InList: _in_list,
    ir.IsNull: _is_null,
    ir.Like: _like,
}
