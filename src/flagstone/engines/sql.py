"""IR expressions -> sqlglot expressions, one function per node type.

Leaf names (fields, aggregates, entity attributes) are resolved by the caller, because the same
rule expression refers to different columns in different stages of a query.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sqlglot import exp

from flagstone.rules import ir
from flagstone.rules.ir import walk as walk  # re-exported: engines walk expressions too

Leaf = Callable[[ir.Expr], exp.Expression]

_COMPARE: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
_ARITH: dict[str, type[exp.Binary]] = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}


def literal(value: ir.Value) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, float):
        # A bare 1000.0 would be read as an exact DECIMAL; the IR says float.
        return exp.cast(exp.Literal.string(repr(value)), "DOUBLE")
    if isinstance(value, Decimal):
        return exp.Literal.number(format(value, "f"))
    return exp.Literal.number(str(value))


def to_sql(node: ir.Expr, leaf: Leaf) -> exp.Expression:
    def go(n: ir.Expr) -> exp.Expression:
        return to_sql(n, leaf)

    if isinstance(node, ir.Literal):
        return literal(node.value)
    if isinstance(node, ir.Field | ir.Attr | ir.EntityField | ir.AggregateRef):
        return leaf(node)
    if isinstance(node, ir.Not):
        return exp.Not(this=exp.Paren(this=go(node.operand)))
    if isinstance(node, ir.Negate):
        return exp.Neg(this=exp.Paren(this=go(node.operand)))
    if isinstance(node, ir.Logical):
        cls = exp.And if node.op == "and" else exp.Or
        return exp.Paren(this=cls(this=go(node.left), expression=go(node.right)))
    if isinstance(node, ir.Compare):
        return _COMPARE[node.op](this=go(node.left), expression=go(node.right))  # type: ignore[return-value]
    if isinstance(node, ir.Arithmetic):
        left, right = go(node.left), go(node.right)
        if node.op == "/":
            # Division by zero is NULL on every engine; the cast makes it a float even for integers.
            divisor = exp.Nullif(this=right, expression=exp.Literal.number("0"))
            result: exp.Expression = exp.Div(this=exp.cast(left, "DOUBLE"), expression=divisor)
        else:
            result = _ARITH[node.op](this=left, expression=right)  # type: ignore[assignment]
        return exp.Paren(this=result)
    if isinstance(node, ir.InList):
        test: exp.Expression = exp.In(this=go(node.operand), expressions=[go(v) for v in node.values])
        return exp.Not(this=exp.Paren(this=test)) if node.negated else test
    if isinstance(node, ir.IsNull):
        test = exp.Is(this=go(node.operand), expression=exp.Null())
        return exp.Not(this=exp.Paren(this=test)) if node.negated else test
    if isinstance(node, ir.Like):
        test = exp.Like(this=go(node.operand), expression=exp.Literal.string(node.pattern))
        return exp.Not(this=exp.Paren(this=test)) if node.negated else test
    raise TypeError(f"no SQL for {node!r}")
