"""Rule expressions: text -> sqlglot syntax tree -> typed intermediate form.

Expressions are written in a small SQL subset (``amount >= 0.9 * $threshold and kind = 'x'``).
sqlglot does the parsing; this module admits only the node types that every back end can run,
resolves names and parameters, and checks types, so a bad rule fails at load time with the file,
line and field rather than at scan time on one engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal, InvalidOperation

import sqlglot
from sqlglot import exp

from flagstone.errors import RuleError
from flagstone.events import ENTITY_FIELDS, EVENT_FIELDS
from flagstone.protected import PROTECTED_REFUSAL, protected_match
from flagstone.rules import ir

_EVENT_TYPES: dict[str, ir.ValueType] = {
    "string": "string",
    "decimal": "number",
    "timestamp": "timestamp",
    "boolean": "boolean",
}
_COMPARE = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
ENTITY_ROLES = ("actor", "counterparty")


@dataclass
class Scope:
    """What names an expression may use, and where to point errors."""

    path: str
    line: int | None
    field: str
    params: dict[str, ir.ParamValue]
    aggregates: dict[str, ir.ValueType] = dc_field(default_factory=dict)
    # In ``having`` only values constant per group may appear: these fields and roles.
    group_only: tuple[str, ...] | None = None
    fields_read: set[str] = dc_field(default_factory=set)
    # The rule's ``profiles``, readable as actor.<name> / counterparty.<name>.
    profiles: dict[str, ir.Profile] = dc_field(default_factory=dict)
    # Fields of the account view's legs (ir.LEG_FIELDS), where an expression reads legs.
    leg_fields: dict[str, ir.ValueType] = dc_field(default_factory=dict)

    def error(self, message: str, value: object = None) -> RuleError:
        return RuleError(message, path=self.path, line=self.line, field=self.field, value=value)


def parse_literal_number(text: str) -> int | Decimal | float:
    """Integer, exact decimal, or (with an exponent) float — the same typing as SQL literals."""
    if "e" in text.lower():
        return float(text)
    if "." in text:
        return Decimal(text)
    return int(text)


def param_value(name: str, scope: Scope) -> ir.ParamValue:
    if name not in scope.params:
        known = ", ".join(sorted(scope.params)) or "none"
        raise scope.error(f"unknown parameter ${name} (parameters: {known})", name)
    return scope.params[name]


def param_literal(name: str, scope: Scope) -> ir.Literal:
    value = param_value(name, scope)
    if isinstance(value, tuple):
        raise scope.error(f"${name} is a list; a list parameter is read only as `x in ${name}`", f"${name}")
    return ir.Literal(value)


def parse_text(text: str, scope: Scope) -> exp.Expression:
    if not isinstance(text, str | int | float | bool):
        raise scope.error("expected an expression as text", text)
    try:
        tree = sqlglot.parse_one(str(text), read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise scope.error(f"cannot parse expression {text!r}: {exc.errors[0]['description']}", text) from exc
    if tree is None:
        raise scope.error("empty expression", text)
    return tree  # type: ignore[return-value]


def to_predicate(text: str, scope: Scope) -> ir.Expr:
    """Parse a boolean expression (match, condition, having)."""
    node, typ = convert(parse_text(text, scope), scope)
    if typ not in ("boolean", "null"):
        raise scope.error(f"expression {text!r} must be true or false, but it is a {typ}", text)
    return node


def to_aggregate(text: str, scope: Scope) -> tuple[ir.Aggregate, ir.ValueType]:
    """Parse ``count(*)``, ``sum(amount)``, ``count_distinct(counterparty)`` etc."""
    tree = parse_text(text, scope)
    if isinstance(tree, exp.Count):
        arg = tree.this
        if isinstance(arg, exp.Star):
            return ir.Aggregate("count", None), "number"
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                raise scope.error("count(distinct ...) takes exactly one expression", text)
            operand, _ = convert(arg.expressions[0], scope)
            return ir.Aggregate("count_distinct", operand), "number"
        operand, _ = convert(arg, scope)
        return ir.Aggregate("count", operand), "number"
    simple: dict[type[exp.Expression], str] = {exp.Sum: "sum", exp.Avg: "avg", exp.Max: "max", exp.Min: "min"}
    for cls, name in simple.items():
        if isinstance(tree, cls):
            operand, typ = convert(tree.this, scope)
            if name in ("sum", "avg") and typ not in ("number", "null"):
                raise scope.error(f"{name}() needs a number, but {tree.this.sql()} is a {typ}", text)
            return ir.Aggregate(name, operand), ("number" if name in ("sum", "avg") else typ)
    if isinstance(tree, exp.Anonymous) and tree.name.lower() == "count_distinct":
        if len(tree.expressions) != 1:
            raise scope.error("count_distinct() takes exactly one expression", text)
        operand, _ = convert(tree.expressions[0], scope)
        return ir.Aggregate("count_distinct", operand), "number"
    raise scope.error(
        f"{text!r} is not an aggregate; use one of count(*), count(x), sum(x), avg(x), max(x), "
        "min(x), count_distinct(x)",
        text,
    )


def _same_type(a: ir.ValueType, b: ir.ValueType) -> bool:
    return a == b or "null" in (a, b)


def convert(node: exp.Expression, scope: Scope) -> tuple[ir.Expr, ir.ValueType]:
    """One sqlglot node to one IR node, with its type. Anything not listed is refused."""
    if isinstance(node, exp.Paren):
        return convert(node.this, scope)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return ir.Literal(node.this), "string"
        try:
            return ir.Literal(parse_literal_number(node.this)), "number"
        except (ValueError, InvalidOperation) as exc:
            raise scope.error(f"bad number {node.this!r}", node.this) from exc
    if isinstance(node, exp.Boolean):
        return ir.Literal(bool(node.this)), "boolean"
    if isinstance(node, exp.Null):
        return ir.Literal(None), "null"
    if isinstance(node, exp.Placeholder):
        lit = param_literal(str(node.this), scope)
        return lit, _literal_type(lit.value)
    if isinstance(node, exp.Column):
        return _column(node, scope)
    if isinstance(node, exp.And | exp.Or):
        left, lt = convert(node.this, scope)
        right, rt = convert(node.expression, scope)
        for side, typ in ((node.this, lt), (node.expression, rt)):
            if typ not in ("boolean", "null"):
                raise scope.error(f"{side.sql()!r} must be true or false, but it is a {typ}", side.sql())
        return ir.Logical("and" if isinstance(node, exp.And) else "or", left, right), "boolean"
    if isinstance(node, exp.Not):
        inner = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        if isinstance(inner, exp.Is | exp.In | exp.Like):
            converted, typ = convert(inner, scope)
            assert isinstance(converted, ir.IsNull | ir.InList | ir.Like)
            return _negated(converted), typ
        operand, typ = convert(inner, scope)  # type: ignore[arg-type]
        if typ not in ("boolean", "null"):
            raise scope.error(f"NOT needs true or false, but {inner.sql()!r} is a {typ}", inner.sql())
        return ir.Not(operand), "boolean"
    if isinstance(node, exp.Neg):
        operand, typ = convert(node.this, scope)
        if typ not in ("number", "null"):
            raise scope.error(f"cannot negate {node.this.sql()!r}, a {typ}", node.sql())
        if isinstance(operand, ir.Literal) and isinstance(operand.value, int | Decimal | float):
            return ir.Literal(-operand.value), "number"
        return ir.Negate(operand), "number"
    for cls, op in _COMPARE.items():
        if isinstance(node, cls):
            left, lt = convert(node.this, scope)
            right, rt = convert(node.expression, scope)
            if not _same_type(lt, rt):
                raise scope.error(f"cannot compare a {lt} with a {rt} in {node.sql()!r}", node.sql())
            if "timestamp" in (lt, rt):
                raise scope.error("timestamps cannot be compared in rule expressions", node.sql())
            return ir.Compare(op, left, right), "boolean"
    for cls, op in _ARITH.items():
        if isinstance(node, cls):
            left, lt = convert(node.this, scope)
            right, rt = convert(node.expression, scope)
            for side, typ in ((node.this, lt), (node.expression, rt)):
                if typ not in ("number", "null"):
                    raise scope.error(f"arithmetic needs numbers, but {side.sql()!r} is a {typ}", node.sql())
            return ir.Arithmetic(op, left, right), "number"
    if isinstance(node, exp.Between):
        low = exp.GTE(this=node.this, expression=node.args["low"])
        high = exp.LTE(this=node.this.copy(), expression=node.args["high"])
        return convert(exp.And(this=low, expression=high), scope)
    if isinstance(node, exp.In):
        operand, typ = convert(node.this, scope)
        items = node.expressions
        if isinstance(listed := node.args.get("field"), exp.Placeholder):
            items = _list_param(str(listed.this), scope)
        elif node.args.get("query") is not None or node.args.get("field") is not None or not items:
            raise scope.error("IN needs a list of values, e.g. kind in ('a', 'b') or kind in $kinds", node.sql())
        values: list[ir.Literal] = []
        for item in items:
            value, lt = convert(item, scope)
            if not isinstance(value, ir.Literal) or value.value is None:
                raise scope.error(f"IN lists hold constants, not {item.sql()!r}", item.sql())
            if not _same_type(typ, lt):
                raise scope.error(f"IN list value {item.sql()} is a {lt}, not a {typ}", item.sql())
            values.append(value)
        return ir.InList(operand, tuple(values)), "boolean"
    if isinstance(node, exp.Is):
        if not isinstance(node.expression, exp.Null):
            raise scope.error("only IS NULL / IS NOT NULL are supported", node.sql())
        operand, _ = convert(node.this, scope)
        return ir.IsNull(operand), "boolean"
    if isinstance(node, exp.Like):
        operand, typ = convert(node.this, scope)
        pattern = node.expression
        if isinstance(pattern, exp.Placeholder):
            pattern = exp.Literal.string(str(param_literal(str(pattern.this), scope).value))
        if not (isinstance(pattern, exp.Literal) and pattern.is_string) or typ not in ("string", "null"):
            raise scope.error("LIKE compares a text field with a quoted pattern", node.sql())
        return ir.Like(operand, pattern.this), "boolean"
    raise scope.error(f"{node.sql()!r} is not supported in rule expressions ({type(node).__name__})", node.sql())


def _list_param(name: str, scope: Scope) -> list[exp.Expression]:
    """``x in $name``: the list parameter's values as the literals of an IN list."""
    value = param_value(name, scope)
    if not isinstance(value, tuple):
        raise scope.error(f"${name} is one value, not a list; write x = ${name} or x in (${name})", f"${name}")
    return [exp.Literal.string(v) if isinstance(v, str) else exp.Literal.number(str(v)) for v in value]


def _negated(node: ir.IsNull | ir.InList | ir.Like) -> ir.Expr:
    if isinstance(node, ir.IsNull):
        return ir.IsNull(node.operand, not node.negated)
    if isinstance(node, ir.InList):
        return ir.InList(node.operand, node.values, not node.negated)
    return ir.Like(node.operand, node.pattern, not node.negated)


def _literal_type(value: ir.Value) -> ir.ValueType:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


def _column(node: exp.Column, scope: Scope) -> tuple[ir.Expr, ir.ValueType]:
    name = node.name
    table = node.table
    text = node.sql()
    if not table:
        if name in scope.aggregates:
            return ir.AggregateRef(name), scope.aggregates[name]
        if name in scope.leg_fields:
            scope.fields_read.add(name)
            return ir.Field(name), scope.leg_fields[name]
        if name in EVENT_FIELDS:
            if scope.group_only is not None and name not in scope.group_only:
                raise scope.error(
                    f"'{name}' differs between the events of a window; in having use an aggregate "
                    f"or a group_by field ({', '.join(scope.group_only)})",
                    text,
                )
            col = EVENT_FIELDS[name]
            if col.type == "json":
                raise scope.error("use attrs.<key> to read one attribute", text)
            scope.fields_read.add(name)
            return ir.Field(name), _EVENT_TYPES[col.type]
        hint = " (aggregates: " + ", ".join(scope.aggregates) + ")" if scope.aggregates else ""
        if name in ir.LEG_FIELDS:
            hint = (
                " (a field of the account view's legs: a sequence with 'accounts' reads it in first and "
                "then; match chooses events before they become legs)"
            )
        raise scope.error(f"unknown field '{name}'{hint}", text)
    if table == "attrs":
        if (stem := protected_match(name)) is not None:
            raise scope.error(f"attrs.{name} looks like a protected attribute ('{stem}'): {PROTECTED_REFUSAL}", text)
        if scope.group_only is not None:
            raise scope.error("attrs differ between the events of a window; not allowed in having", text)
        scope.fields_read.add(f"attrs.{name}")
        return ir.Attr(name), "string"
    if table in ENTITY_ROLES:
        if name in scope.profiles:
            if scope.group_only is not None and table not in scope.group_only:
                raise scope.error(f"{text} is only constant per group when '{table}' is in group_by", text)
            return ir.EntityField(table, name, scope.profiles[name]), "number"  # type: ignore[arg-type]
        if name not in ENTITY_FIELDS or name == "entity":
            known = ", ".join([*(c for c in ENTITY_FIELDS if c != "entity"), *scope.profiles])
            raise scope.error(f"unknown {table} attribute '{name}' (known: {known})", text)
        if scope.group_only is not None and table not in scope.group_only:
            raise scope.error(f"{text} is only constant per group when '{table}' is in group_by", text)
        typ = _EVENT_TYPES[ENTITY_FIELDS[name].type]
        return ir.EntityField(table, name), typ  # type: ignore[arg-type]
    raise scope.error(f"unknown name '{text}' (use a field, attrs.<key>, actor.<attr> or counterparty.<attr>)", text)
