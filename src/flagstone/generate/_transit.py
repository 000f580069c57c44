"""The transit operator: fare cards tapped on board buses, trams and metro trains.

Each card rides a few lines, so it meets a handful of vehicles a day; a few heavy users (couriers,
shift workers) ride many lines and now and then come close to the cloned-card threshold.
Only cards and vehicles are recorded: no stops, no routes, nothing that locates a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flagstone.generate import _ids
from flagstone.generate._time import DAYS, HOURS_TRANSIT, WEEK_TRANSIT, sample_times

TAPS_PER_CARD_DAY = 2.2
HEAVY_SHARE = 0.002
HEAVY_FACTOR = 2.5
MAX_LINES = 8
PRODUCTS = ("monthly pass", "stored value", "stored value short trip")
FARE_CENTS = np.array([0, 290, 170], dtype=np.int64)
# (mode, number of lines, vehicles per line low..high, fleet number prefix)
FLEET = (("BUS", 40, (6, 18)), ("TRAM", 12, (8, 20)), ("U", 4, (10, 25)))


@dataclass
class Transit:
    cards: list[str]
    cum_weight: np.ndarray
    lines: np.ndarray  # (cards, MAX_LINES) line numbers; a card rides lines[:, :n_lines]
    n_lines: np.ndarray
    product: np.ndarray
    line_start: np.ndarray
    line_size: np.ndarray
    vehicles: list[str]
    n_planted: int = 0
    _card_arr: pa.Array | None = None

    @classmethod
    def build(cls, rng: np.random.Generator, n_taps: int) -> Transit:
        n = max(100, int(n_taps / (DAYS * TAPS_PER_CARD_DAY)))
        heavy = rng.random(n) < HEAVY_SHARE
        # Heavy users ride at a steady, high rate; the rest vary widely.
        weight = np.where(
            heavy, HEAVY_FACTOR * rng.gamma(20.0, 1 / 20.0, n), np.minimum(rng.gamma(3.0, 1 / 3.0, n), 2.0)
        )
        vehicles: list[str] = []
        starts: list[int] = []
        sizes: list[int] = []
        for mode, count, (lo, hi) in FLEET:
            for _ in range(count):
                size = int(rng.integers(lo, hi + 1))
                starts.append(len(vehicles))
                sizes.append(size)
                vehicles.extend(f"{mode}-{len(vehicles) + 1001:04d}" for _ in range(size))
        n_line = len(starts)
        return cls(
            cards=[_ids.card(i) for i in range(n)],
            cum_weight=np.cumsum(weight) / weight.sum(),
            lines=rng.integers(0, n_line, (n, MAX_LINES)),
            n_lines=np.where(heavy, MAX_LINES, rng.integers(1, 4, n)),
            product=rng.choice(3, n, p=[0.55, 0.35, 0.10]),
            line_start=np.array(starts),
            line_size=np.array(sizes),
            vehicles=vehicles,
        )

    def new_card(self) -> str:
        self.n_planted += 1
        return _ids.card(len(self.cards) + self.n_planted)

    def _cards(self) -> pa.Array:
        if self._card_arr is None:
            self._card_arr = pa.array(self.cards, type=pa.string())
        return self._card_arr

    def background(self, rng: np.random.Generator, day0: int, day1: int, n: int) -> dict[str, object]:
        ts_ms = sample_times(rng, day0, day1, n, HOURS_TRANSIT, WEEK_TRANSIT) * 1000 + rng.integers(0, 1000, n)
        who = np.minimum(np.searchsorted(self.cum_weight, rng.random(n)), len(self.cards) - 1)
        line = self.lines[who, (rng.random(n) * self.n_lines[who]).astype(int)]
        vehicle = self.line_start[line] + (rng.random(n) * self.line_size[line]).astype(int)
        product = self.product[who]
        return {
            "ts_ms": ts_ms,
            "card": self._cards().take(pa.array(who)),
            "vehicle": pa.array(self.vehicles, type=pa.string()).take(pa.array(vehicle)),
            "product": pa.array(PRODUCTS, type=pa.string()).take(pa.array(product)),
            "fare_cents": FARE_CENTS[product],
        }
