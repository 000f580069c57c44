"""Rows of planted scenarios, collected per source before the writers give them record ids.

A scenario's rows carry its index, so that once a writer has merged them into the background and
numbered them, the labels can name each record by (source, event_id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flagstone.generate._catalogue import Product


@dataclass(frozen=True)
class Scenario:
    scenario_id: str
    rule_id: str
    label: str  # "suspicious" | "decoy"


@dataclass
class Planted:
    scenarios: list[Scenario] = field(default_factory=list)
    bank: dict[str, list[object]] = field(default_factory=dict)
    shop: dict[str, list[object]] = field(default_factory=dict)
    transit: dict[str, list[object]] = field(default_factory=dict)
    _orders: int = 0

    def scenario(self, scenario_id: str, rule_id: str, label: str) -> int:
        self.scenarios.append(Scenario(scenario_id, rule_id, label))
        return len(self.scenarios) - 1

    @staticmethod
    def _add(table: dict[str, list[object]], **row: object) -> None:
        for k, v in row.items():
            table.setdefault(k, []).append(v)

    def bank_event(
        self,
        sc: int,
        ts: int,
        account: str,
        code: str,
        cents: int,
        *,
        counter: str = "",
        channel: str = "online",
        terminal: str = "",
        reference: str = "",
    ) -> None:
        self._add(
            self.bank,
            scenario=sc,
            ts=int(ts),
            account=account,
            code=code,
            counter=counter,
            cents=int(cents),
            channel=channel,
            terminal=terminal,
            reference=reference,
        )

    def shop_order(self, sc: int, ts: int, customer: str, lines: list[tuple[Product, int]], store: str) -> None:
        """One order; ``ts`` in epoch seconds, every line shares it as real order lines do."""
        self._orders += 1
        for no, (product, qty) in enumerate(lines, start=1):
            self._add(
                self.shop,
                scenario=sc,
                ts_ms=int(ts) * 1000 + 137,
                order=self._orders,
                line=no,
                customer=customer,
                sku=product.sku,
                qty=int(qty),
                unit_cents=product.price_cents,
                store=store,
            )

    def tap(self, sc: int, ts: int, card: str, vehicle: str, product: str, fare_cents: int) -> None:
        self._add(
            self.transit,
            scenario=sc,
            ts_ms=int(ts) * 1000 + 250,
            card=card,
            vehicle=vehicle,
            product=product,
            fare_cents=int(fare_cents),
        )


def columns(table: dict[str, list[object]], keys: dict[str, str]) -> dict[str, object]:
    """Planted rows as the same column types the background uses: numpy ints, Arrow strings."""
    out: dict[str, object] = {}
    for name, kind in keys.items():
        values = table.get(name, [])
        out[name] = pa.array(values, type=pa.string()) if kind == "str" else np.array(values, dtype=np.int64)
    return out
