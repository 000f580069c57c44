"""Carried leaves: what the SQL engines' statements for the sequence, deviation and dormancy kinds
share. Every field, attribute and profile attribute a later expression reads is computed once per
event as an ``x_...`` column, so those expressions can be evaluated after joins and windows. Each
SQL engine writes the columns in its own dialect (``select`` and ``sql``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from sqlglot import exp

from flagstone.engines.sql import Leaf, walk
from flagstone.rules import ir

# An AggregateRef's name -> the SQL expression giving that value in a statement.
Named = Callable[[str], exp.Expression]


class GroupedRule(Protocol):
    @property
    def match(self) -> ir.Expr: ...
    @property
    def group_by(self) -> tuple[str, ...]: ...


class Carried(ABC):
    """The leaves of some expressions, computed once per event as columns ``x_amount``, ..."""

    def __init__(self, *exprs: ir.Expr) -> None:
        self.cols: dict[ir.Expr, str] = {}
        for e in exprs:
            for n in walk(e):
                if isinstance(n, ir.Field | ir.Attr | ir.EntityField) and n not in self.cols:
                    self.cols[n] = _column_name(n, len(self.cols))

    @abstractmethod
    def select(self) -> str:
        """``, <leaf> AS x_...`` for every carried leaf, over the raw event ``e``."""

    @abstractmethod
    def sql(self, node: ir.Expr, alias: str | None = None, named: Named | None = None) -> str:
        """``node`` read from the carried columns of ``alias``."""

    def leaf(self, alias: str | None = None, named: Named | None = None) -> Leaf:
        """Leaves read from the carried columns of ``alias``; ``named`` maps AggregateRef names."""

        def leaf(node: ir.Expr) -> exp.Expression:
            if node in self.cols:
                return exp.column(self.cols[node], table=alias)
            if isinstance(node, ir.AggregateRef) and named is not None:
                return named(node.name)
            raise TypeError(f"{node!r} is not carried")

        return leaf


def _column_name(node: ir.Field | ir.Attr | ir.EntityField, i: int) -> str:
    # Readable names in the generated SQL; attribute keys may hold any character, so they are numbered.
    if isinstance(node, ir.Field):
        return f"x_{node.name}"
    if isinstance(node, ir.EntityField):
        return f"x_{node.role}_{node.name}"
    return f"x_attr_{i}"
