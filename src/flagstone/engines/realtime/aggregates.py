"""Window aggregates kept up to date as events enter and leave a window, one object per aggregate.

Each accumulator sees the values of its argument in window order: ``add`` at the new end,
``remove`` at the old end (first in, first out). Counts and exact sums (integers, decimals) are
O(1) per event; ``max``/``min`` and sums that met a float are recomputed from the values held,
which gives exactly the oracle's result (float addition is not reversible). NULL arguments are
not held, as SQL aggregates ignore them; ``count(*)`` counts every event.
"""

from __future__ import annotations

from collections import Counter, deque
from decimal import localcontext
from typing import Any

from flagstone.rules import ir


class Accumulator:
    """The value of one aggregate over the values currently in the window."""

    def add(self, value: Any) -> None:
        raise NotImplementedError

    def remove(self, value: Any) -> None:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError


class CountAll(Accumulator):
    def __init__(self) -> None:
        self.n = 0

    def add(self, value: Any) -> None:
        self.n += 1

    def remove(self, value: Any) -> None:
        self.n -= 1

    def value(self) -> Any:
        return self.n


class Count(CountAll):
    def add(self, value: Any) -> None:
        self.n += value is not None

    def remove(self, value: Any) -> None:
        self.n -= value is not None


class CountDistinct(Accumulator):
    def __init__(self) -> None:
        self.seen: Counter[Any] = Counter()

    def add(self, value: Any) -> None:
        if value is not None:
            self.seen[value] += 1

    def remove(self, value: Any) -> None:
        if value is None:
            return
        self.seen[value] -= 1
        if not self.seen[value]:
            del self.seen[value]

    def value(self) -> Any:
        return len(self.seen)


class Held(Accumulator):
    """Keeps the non-NULL values in window order; subclasses compute from them."""

    def __init__(self) -> None:
        self.values: deque[Any] = deque()

    def add(self, value: Any) -> None:
        if value is not None:
            self.values.append(value)

    def remove(self, value: Any) -> None:
        if value is not None:
            self.values.popleft()


class Max(Held):
    def value(self) -> Any:
        return max(self.values) if self.values else None


class Min(Held):
    def value(self) -> Any:
        return min(self.values) if self.values else None


class Sum(Held):
    """A running total while every value is exact; recomputed in window order once a float is held."""

    def __init__(self) -> None:
        super().__init__()
        self.total: Any = 0
        self.floats = 0

    def add(self, value: Any) -> None:
        if value is None:
            return
        super().add(value)
        if isinstance(value, float):
            self.floats += 1
        else:
            with localcontext() as ctx:
                ctx.prec = 60
                self.total = self.total + value

    def remove(self, value: Any) -> None:
        if value is None:
            return
        super().remove(value)
        if isinstance(value, float):
            self.floats -= 1
        else:
            with localcontext() as ctx:
                ctx.prec = 60
                self.total = self.total - value
        if not self.values:
            self.total = 0  # an exact restart, whatever type the last value had

    def value(self) -> Any:
        if not self.values:
            return None
        if self.floats:
            values = list(self.values)
            with localcontext() as ctx:
                ctx.prec = 60
                return sum(values[1:], values[0])
        return self.total


class Avg(Sum):
    def value(self) -> Any:
        total = super().value()
        return None if total is None else float(total) / len(self.values)


ACCUMULATORS: dict[str, type[Accumulator]] = {
    "count": Count,
    "count_distinct": CountDistinct,
    "sum": Sum,
    "avg": Avg,
    "max": Max,
    "min": Min,
}


def accumulator(agg: ir.Aggregate) -> Accumulator:
    return CountAll() if agg.arg is None else ACCUMULATORS[agg.function]()
