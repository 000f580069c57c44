"""Percentiles and the figures of one run, in the form a report prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen._openloop import CONNECTION_ERROR, NO_ANSWER, Result


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))]


@dataclass(frozen=True)
class Summary:
    """Latencies in seconds (math.inf once a request went unanswered); rates in units/s."""

    requests: int
    ok: int  # answered 200
    errors: int
    p50: float
    p95: float
    p99: float
    max: float
    answered_rate: float  # answered 200 over the time to the last answer
    sent_rate: float  # the generator's own pace, between its first and last send
    lag_p99: float  # how far the generator slipped behind its schedule
    lag_max: float
    error_counts: str  # "HTTP 503 x12, no answer x3"; empty without errors


def describe_status(status: int) -> str:
    if status == NO_ANSWER:
        return "no answer"
    if status == CONNECTION_ERROR:
        return "connection error"
    return f"HTTP {status}"


def summarise(r: Result, per_request: int = 1) -> Summary:
    """The figures of a run; ``per_request`` units (events in a batch, say) count towards each rate."""
    lat = sorted(r.latencies)
    lags = sorted(r.schedule_lag)
    ok = r.statuses.get(200, 0)
    return Summary(
        requests=r.requests,
        ok=ok,
        errors=r.requests - ok,
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        max=lat[-1] if lat else math.nan,
        answered_rate=ok * per_request / r.last_answer if ok and r.last_answer > 0 else 0.0,
        # Between the first and the last send: n requests span n - 1 intervals.
        sent_rate=(r.requests - 1) * per_request / r.last_sent if r.requests > 1 and r.last_sent > 0 else math.nan,
        lag_p99=percentile(lags, 99),
        lag_max=lags[-1] if lags else math.nan,
        error_counts=", ".join(f"{describe_status(s)} x{c:,}" for s, c in sorted(r.statuses.items()) if s != 200),
    )
