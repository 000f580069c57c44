"""Computed number fields of a mapping: ``amount: {compute: "qty * unit_price"}``.

The language is small on purpose: decimal numbers, source column names (bare, or in double
quotes), ``+ - * /``, unary minus and parentheses. It is parsed here into a tree (never by
Python's ``eval``), checked when the mapping loads, and compiled to SQL, so that a batch is still
converted in one query (``_convert``).

The arithmetic is exact decimal with ``SCALE`` places, done on 128-bit integers that count
10^-12 units, so it never goes through binary floating point:

- an operand is read as a number field reads its column (the field's decimal and thousands
  separators), exactly; it may have at most 14 digits before the point and 12 after;
- ``+`` and ``-`` are exact; ``*`` and ``/`` round their result half away from zero to 12 places;
- every intermediate result, like a stored number, has at most 14 digits before the point.

A missing or bad operand, a division by zero or a step out of range quarantines the record, with
the reason. The result is then checked and stored like any number field (at most 4 places, unless
the field asks for ``round``). ``tests/test_ingest_compute.py`` holds this against Python's
``Decimal`` on random expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

SCALE = 12
UNIT = 10**SCALE
INT_DIGITS = 14  # digits before the point, as in DECIMAL(18,4)
LIMIT = 10**INT_DIGITS
MAX_TEXT = 1_000
MAX_NODES = 64
MAX_DEPTH = 32
OPERATORS = ("+", "-", "*", "/")

_TOKEN = re.compile(
    r"""(?P<number>\d+(?:\.\d+)?|\.\d+)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | "(?P<quoted>(?:[^"]|"")*)"
      | (?P<op>[-+*/()])""",
    re.VERBOSE,
)


class ComputeError(ValueError):
    """A bad expression; ``position`` counts characters from 1."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Number:
    value: Decimal


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Negate:
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # one of OPERATORS
    left: Node
    right: Node


Node = Number | Column | Negate | Binary


@dataclass(frozen=True)
class Computation:
    """One ``compute`` expression: its text, its tree and the columns it reads (first use first)."""

    text: str
    tree: Node
    operands: tuple[str, ...]


def parse(text: str) -> Computation:
    """The expression's tree; ``ComputeError`` names the first problem and where it is."""
    if len(text) > MAX_TEXT:
        raise ComputeError(f"longer than {MAX_TEXT} characters", MAX_TEXT + 1)
    parser = _Parser(text)
    tree = parser.expression(0)
    if parser.i < len(parser.tokens):
        kind, value, pos = parser.tokens[parser.i]
        raise ComputeError(f"unexpected {_shown(kind, value)}; expected an operator + - * /", pos)
    operands = tuple(dict.fromkeys(n.name for n in _walk(tree) if isinstance(n, Column)))
    if not operands:
        raise ComputeError("reads no column; a constant is written as `value`", 1)
    if len(_walk(tree)) > MAX_NODES:
        raise ComputeError(f"more than {MAX_NODES} numbers, columns and operators", 1)
    return Computation(text, tree, operands)


class _Parser:
    """Recursive descent over: expr = term (('+'|'-') term)*; term = unary (('*'|'/') unary)*;
    unary = '-' unary | primary; primary = number | column | '(' expr ')'."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def _op(self, ops: str) -> str | None:
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "op" and self.tokens[self.i][1] in ops:
            self.i += 1
            return self.tokens[self.i - 1][1]
        return None

    def expression(self, depth: int) -> Node:
        node = self.term(depth)
        while (op := self._op("+-")) is not None:
            node = Binary(op, node, self.term(depth))
        return node

    def term(self, depth: int) -> Node:
        node = self.unary(depth)
        while (op := self._op("*/")) is not None:
            pos = self._position()
            right = self.unary(depth)
            if op == "/" and isinstance(right, Number) and right.value == 0:
                raise ComputeError("division by zero", pos)
            node = Binary(op, node, right)
        return node

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ComputeError(f"nested more than {MAX_DEPTH} deep", self._position())
        if self._op("-") is not None:
            operand = self.unary(depth + 1)
            return Number(-operand.value) if isinstance(operand, Number) else Negate(operand)
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        if self.i >= len(self.tokens):
            raise ComputeError("ends too early; expected a number, a column or '('", len(self.text) + 1)
        kind, value, pos = self.tokens[self.i]
        self.i += 1
        if kind == "number":
            return _number(value, pos)
        if kind in ("name", "quoted"):
            return Column(value)
        if value == "(":
            node = self.expression(depth + 1)
            if self._op(")") is None:
                raise ComputeError("'(' is not closed", pos)
            return node
        raise ComputeError(f"unexpected {_shown(kind, value)}; expected a number, a column or '('", pos)

    def _position(self) -> int:
        return self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, 1-based position) of each token."""
    out: list[tuple[str, str, int]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return out
        m = _TOKEN.match(text, at)
        if m is None:
            raise ComputeError(f"unexpected character {text[at]!r}", at + 1)
        kind = m.lastgroup
        assert kind is not None
        value = m.group(kind)
        if kind == "quoted":
            if value == "":
                raise ComputeError("an empty column name", at + 1)
            value = value.replace('""', '"')
        out.append((kind, value, at + 1))
        at = m.end()


def _number(text: str, pos: int) -> Number:
    value = Decimal(text)
    if value >= LIMIT:
        raise ComputeError(f"the number {text} has more than {INT_DIGITS} digits before the point", pos)
    if value != value.quantize(Decimal(1).scaleb(-SCALE)):
        raise ComputeError(f"the number {text} has more than {SCALE} decimal places", pos)
    return Number(value)


def _shown(kind: str, value: str) -> str:
    return f"'{value}'" if kind == "op" else f"{'number' if kind == 'number' else 'column'} {value!r}"


def _walk(node: Node) -> list[Node]:
    if isinstance(node, Negate):
        return [node, *_walk(node.operand)]
    if isinstance(node, Binary):
        return [node, *_walk(node.left), *_walk(node.right)]
    return [node]


# -- SQL ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    """A computation as SQL over HUGEINT units of 10^-12, in steps that each read the one before.

    ``steps[h]`` holds the ``(name, expression)`` columns of the nodes of height h + 1 (leaves are
    the operand columns, given by the caller), so each node is computed once however often its
    parents read it. ``result`` names the root's column; ``divisors`` the columns that a division
    divides by, for the check that names a division by zero."""

    steps: tuple[tuple[tuple[str, str], ...], ...]
    result: str
    divisors: tuple[str, ...]


def to_sql(comp: Computation, prefix: str, operand_units: dict[str, str]) -> Compiled:
    """``operand_units``: column name -> SQL of that operand in units (NULL when missing or bad)."""
    levels: dict[int, list[tuple[str, str]]] = {}
    divisors: list[str] = []
    counter = iter(range(MAX_NODES + 1))

    def visit(node: Node) -> tuple[str, int]:
        """(SQL naming the node's value, its height)."""
        if isinstance(node, Number):
            return f"CAST({int(node.value * UNIT)} AS HUGEINT)", 0
        if isinstance(node, Column):
            return operand_units[node.name], 0
        if isinstance(node, Negate):
            inner, h = visit(node.operand)
            return _node(f"-({inner})", h + 1)
        (left, hl), (right, hr) = visit(node.left), visit(node.right)
        if node.op == "/":
            divisors.append(right)
        return _node(_binary(node.op, left, right), max(hl, hr) + 1)

    def _node(sql: str, height: int) -> tuple[str, int]:
        name = f"{prefix}_{next(counter)}"
        levels.setdefault(height, []).append((name, _in_range(sql)))
        return name, height

    root, height = visit(comp.tree)
    if height == 0:  # a lone column
        root, height = _node(root, 1)
    steps = tuple(tuple(levels[h]) for h in range(1, height + 1))
    return Compiled(steps, root, tuple(divisors))


def _binary(op: str, a: str, b: str) -> str:
    if op in "+-":
        return f"({a} {op} {b})"
    sign = f"sign({a}) * sign({b})"
    if op == "*":
        # |a·b| stays below 2^127 whenever the product is in range; try() makes a larger one NULL.
        return f"{sign} * try((abs({a}) * abs({b}) + {UNIT // 2}) // {UNIT})"
    # abs(a) < 10^26, so abs(a) · 10^12 < 10^38 < 2^127; a zero divisor gives NULL, not an error.
    den = f"nullif(abs({b}), 0)"
    return f"{sign} * ((abs({a}) * {UNIT} + {den} // 2) // {den})"


def _in_range(sql: str) -> str:
    return f"(CASE WHEN abs({sql}) < CAST({LIMIT * UNIT} AS HUGEINT) THEN {sql} END)"


def units_sql(number_text: str) -> str:
    """A normalised number text as units (HUGEINT), or NULL when it is not a number in range."""
    d = f"try_cast({number_text} AS DECIMAL(38,{SCALE}))"
    return f"(CASE WHEN abs({d}) < {LIMIT} THEN CAST({d} * {UNIT} AS HUGEINT) END)"


def units_text(sql: str) -> str:
    """Units (HUGEINT) as the exact decimal text a number field reads."""
    one = format(Decimal(1).scaleb(-SCALE), "f")
    return f"CAST(CAST({sql} AS DECIMAL(38,0)) * CAST('{one}' AS DECIMAL(38,{SCALE})) AS VARCHAR)"
