"""The retailer: loyalty customers placing orders of a few lines each, in store and online.

Precursor products are mostly bought by a small group of gardeners and DIY customers, with an
occasional bulk order of fertiliser: the honest look-alikes the precursor rules must live with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flagstone.generate import _ids
from flagstone.generate._catalogue import Product, build_catalogue, popularity
from flagstone.generate._time import HOURS_SHOP, WEEK_SHOP, sample_times

LINES_PER_CUSTOMER = 9
MEAN_LINES_P = 0.42  # geometric lines per order: mean 1 / 0.42, about 2.4
N_STORES = 25
STORES = ("WEB", *(f"ST-{i:03d}" for i in range(1, N_STORES + 1)))
PRECURSOR_P = 0.004  # share of an ordinary customer's lines that are a precursor product
ENTHUSIAST_P = 0.10  # ... and of a gardener's or DIY enthusiast's
ENTHUSIASTS = 0.04
COMPONENT_P = 0.004
BULK_P = {"ordinary": 0.02, "precursor": 0.005, "component": 0.0}


@dataclass
class Shop:
    customers: list[str]
    cum_weight: np.ndarray
    precursor_p: np.ndarray
    home_store: np.ndarray
    online: np.ndarray  # each customer's share of orders placed online
    products: list[Product]
    by_group: dict[str, tuple[np.ndarray, np.ndarray]]  # group -> (product indices, cumulative weights)
    sku: pa.Array
    price: np.ndarray
    n_planted: int = 0
    _customer_arr: pa.Array | None = None

    @classmethod
    def build(cls, rng: np.random.Generator, n_lines: int) -> Shop:
        n = max(200, n_lines // LINES_PER_CUSTOMER)
        weight = rng.gamma(1.5, 1 / 1.5, n)
        products = build_catalogue()
        by_group: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for group in ("ordinary", "precursor", "component"):
            idx = np.array([i for i, p in enumerate(products) if p.group == group])
            counts: dict[str, int] = {}
            for i in idx:
                counts[products[i].category] = counts.get(products[i].category, 0) + 1
            w = np.array([popularity(products[i].category) / counts[products[i].category] for i in idx])
            by_group[group] = (idx, np.cumsum(w) / w.sum())
        return cls(
            customers=[_ids.customer(i) for i in range(n)],
            cum_weight=np.cumsum(weight) / weight.sum(),
            precursor_p=np.where(rng.random(n) < ENTHUSIASTS, ENTHUSIAST_P, PRECURSOR_P),
            home_store=rng.integers(1, N_STORES + 1, n),
            online=rng.beta(1.2, 1.5, n),
            products=products,
            by_group=by_group,
            sku=pa.array([p.sku for p in products], type=pa.string()),
            price=np.array([p.price_cents for p in products], dtype=np.int64),
        )

    def new_customer(self) -> str:
        self.n_planted += 1
        return _ids.customer(len(self.customers) + self.n_planted)

    def products_in(self, category: str) -> list[Product]:
        return [p for p in self.products if p.category == category]

    def _customers(self) -> pa.Array:
        if self._customer_arr is None:
            self._customer_arr = pa.array(self.customers, type=pa.string())
        return self._customer_arr

    def background(self, rng: np.random.Generator, day0: int, day1: int, n_lines: int) -> dict[str, object]:
        """About ``n_lines`` order lines in days [day0, day1); one row per line, orders contiguous."""
        # A few more orders than needed, then cut at exactly n_lines (the last order may lose lines).
        n_orders = max(1, round(n_lines * MEAN_LINES_P * 1.1) + 10)
        ts_ms = sample_times(rng, day0, day1, n_orders, HOURS_SHOP, WEEK_SHOP) * 1000 + rng.integers(0, 1000, n_orders)
        who = np.minimum(np.searchsorted(self.cum_weight, rng.random(n_orders)), len(self.customers) - 1)
        online = rng.random(n_orders) < self.online[who]
        store = np.where(online, 0, self.home_store[who])
        per_order = np.minimum(rng.geometric(MEAN_LINES_P, n_orders), 12)

        order = np.repeat(np.arange(n_orders), per_order)[:n_lines]
        line_no = (np.arange(per_order.sum()) - np.repeat(np.cumsum(per_order) - per_order, per_order) + 1)[:n_lines]
        cust = who[order]
        u = rng.random(len(order))
        group = np.where(u < self.precursor_p[cust], 1, np.where(u < self.precursor_p[cust] + COMPONENT_P, 2, 0))
        product = np.empty(len(order), dtype=np.int64)
        qty = np.ones(len(order), dtype=np.int64)
        for g, name in enumerate(("ordinary", "precursor", "component")):
            sel = group == g
            idx, cum = self.by_group[name]
            k = int(sel.sum())
            product[sel] = idx[np.minimum(np.searchsorted(cum, rng.random(k)), len(idx) - 1)]
            v = rng.random(k)
            q = np.where(v < 0.75, 1, np.where(v < 0.9, 2, rng.integers(3, 7, k)))
            qty[sel] = np.where(v > 1 - BULK_P[name], rng.integers(10, 31, k), q)
        return {
            "ts_ms": ts_ms[order],
            "order": order,
            "line": line_no,
            "customer": self._customers().take(pa.array(cust)),
            "sku": self.sku.take(pa.array(product)),
            "qty": qty,
            "unit_cents": self.price[product],
            "store": pa.array(STORES, type=pa.string()).take(pa.array(store[order])),
        }
