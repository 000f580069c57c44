"""The transit operator: fare cards tapped on board buses, trams and metro trains.

Each card rides a few lines, so it meets a handful of vehicles a day; a few heavy users (shift
workers) ride many lines. Couriers ride for work: on most weekdays about twelve vehicles anywhere
in the network during a shift, on top of their ordinary taps, so 15 to 20 vehicles in a day: the
honest look-alikes of a cloned card, which dozens of people use at once.
Only cards and vehicles are recorded: no stops, no routes, nothing that locates a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flagstone.generate import _ids
from flagstone.generate._time import DAY_S, DAYS, HOUR_S, HOURS_TRANSIT, START_S, WEEK_TRANSIT, sample_times

TAPS_PER_CARD_DAY = 2.2
HEAVY_SHARE = 0.002
HEAVY_FACTOR = 2.5
MAX_LINES = 8
COURIER_SHARE = 0.01  # of cards; at least MIN_COURIERS
MIN_COURIERS = 5
COURIER_JOB_TAPS = (9, 16)  # vehicles boarded for work on a working day: low, high (exclusive); mean 12
COURIER_SHIFT_H = (6, 9, 8)  # shift start (UTC) between 6 and 9 h, lasting 8 h
COURIER_WORKS = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.3, 0.0])  # chance of a working day, Mon..Sun
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
    couriers: np.ndarray  # card indices
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
            couriers=rng.choice(n, size=min(n, max(MIN_COURIERS, round(COURIER_SHARE * n))), replace=False),
        )

    def new_card(self) -> str:
        self.n_planted += 1
        return _ids.card(len(self.cards) + self.n_planted)

    def _cards(self) -> pa.Array:
        if self._card_arr is None:
            self._card_arr = pa.array(self.cards, type=pa.string())
        return self._card_arr

    def background(self, rng: np.random.Generator, day0: int, day1: int, n: int) -> dict[str, object]:
        job_ts, job_who, job_vehicle = self._courier_jobs(rng, day0, day1, n)
        m = n - len(job_ts)
        ts = sample_times(rng, day0, day1, m, HOURS_TRANSIT, WEEK_TRANSIT)
        who = np.minimum(np.searchsorted(self.cum_weight, rng.random(m)), len(self.cards) - 1)
        line = self.lines[who, (rng.random(m) * self.n_lines[who]).astype(int)]
        vehicle = self.line_start[line] + (rng.random(m) * self.line_size[line]).astype(int)
        ts, who, vehicle = (
            np.concatenate([ts, job_ts]),
            np.concatenate([who, job_who]),
            np.concatenate([vehicle, job_vehicle]),
        )
        ts_ms = ts * 1000 + rng.integers(0, 1000, n)
        product = self.product[who]
        return {
            "ts_ms": ts_ms,
            "card": self._cards().take(pa.array(who)),
            "vehicle": pa.array(self.vehicles, type=pa.string()).take(pa.array(vehicle)),
            "product": pa.array(PRODUCTS, type=pa.string()).take(pa.array(product)),
            "fare_cents": FARE_CENTS[product],
        }

    def _courier_jobs(
        self, rng: np.random.Generator, day0: int, day1: int, budget: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The couriers' work taps in days [day0, day1): (epoch seconds, card, vehicle), at most ``budget``."""
        days = np.arange(day0, day1)
        works = rng.random((len(self.couriers), len(days))) < COURIER_WORKS[days % 7]
        who, day = np.nonzero(works)
        taps = rng.integers(*COURIER_JOB_TAPS, len(who))
        lo, hi, length = COURIER_SHIFT_H
        shift = START_S + days[day] * DAY_S + (rng.uniform(lo, hi, len(who)) * HOUR_S).astype(np.int64)
        shift, who = np.repeat(shift, taps)[:budget], np.repeat(self.couriers[who], taps)[:budget]
        ts = shift + rng.integers(0, length * HOUR_S, len(shift))
        return ts, who, rng.integers(0, len(self.vehicles), len(ts))
