"""The demo's calendar: 90 days from Monday 6 January 2025 (UTC), crossing the spring DST change."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

START_S = 1_736_121_600  # 2025-01-06T00:00:00Z, a Monday
DAYS = 90
DAY_S = 86_400
HOUR_S = 3_600
END_S = START_S + DAYS * DAY_S
BANK_ZONE = "Europe/Berlin"

# Relative activity per local hour (0..23) and weekday (Mon..Sun). Local time is one or two hours
# ahead of UTC; ``sample_times`` shifts the profile by one hour, which is close enough.
HOURS_BANK = np.array([1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 12, 12, 12, 11, 11, 11, 11, 10, 9, 7, 5, 3, 2], float)
HOURS_SHOP = np.array([1, 1, 1, 1, 1, 1, 2, 4, 7, 9, 11, 12, 12, 11, 11, 11, 12, 13, 13, 12, 10, 8, 5, 2], float)
HOURS_TRANSIT = np.array([1, 0, 0, 0, 1, 4, 10, 16, 14, 8, 6, 6, 7, 7, 8, 10, 14, 16, 12, 8, 6, 5, 4, 2], float)
WEEK_BANK = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 0.7, 0.3])
WEEK_SHOP = np.array([0.9, 0.9, 0.9, 1.0, 1.2, 1.4, 0.4])
WEEK_TRANSIT = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.4])


def sample_times(
    rng: np.random.Generator, day0: int, day1: int, n: int, hours: np.ndarray, week: np.ndarray
) -> np.ndarray:
    """``n`` epoch seconds in days [day0, day1) of the span, following the hour and weekday profile."""
    days = np.arange(day0, day1)
    dw = week[days % 7]
    day = rng.choice(days, size=n, p=dw / dw.sum())
    utc_hours = np.roll(hours, -1)
    hour = rng.choice(24, size=n, p=utc_hours / utc_hours.sum())
    return START_S + day * DAY_S + hour * HOUR_S + rng.integers(0, HOUR_S, size=n)


def slices(n_events: int, target: int = 250_000) -> list[tuple[int, int]]:
    """Split the span into whole-day slices of about ``target`` events: files come out in time
    order while only one slice is in memory."""
    k = int(min(DAYS, max(1, -(-n_events // target))))
    edges = np.linspace(0, DAYS, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges) if b > a]
