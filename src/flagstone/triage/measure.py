"""How well a priority orders a queue: what a reviewer reading it top down gains.

- ``read_share``: the share of all alerts read, in priority order, when the alerts' own pattern
  recall is reached (every pattern that some alert finds alone has been found). With per-scenario
  labels, which name no patterns, it is when every true alert has been read.
- ``top_precision``: the share of true alerts in the first 10 % of the queue, against
  ``precision``, that of the whole queue (what reading in any order gives).

Ties in priority are read in alert-id order, so a figure never depends on luck.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flagstone.evaluate import AlertTruth

TOP = 0.1


@dataclass(frozen=True)
class QueueMeasures:
    alerts: int
    goal: int  # patterns the alerts find (per pattern), or true alerts (per scenario)
    per_pattern: bool
    read: int  # alerts read, in priority order, to reach the goal
    top_precision: float
    precision: float

    @property
    def read_share(self) -> float:
        return self.read / self.alerts if self.alerts else 0.0

    def lines(self) -> list[str]:
        what = "patterns the alerts find" if self.per_pattern else "true alerts"
        return [
            f"alerts: {self.alerts:,}; {what}: {self.goal:,}",
            f"read in priority order to reach them all: {self.read:,} alerts = {self.read_share:.2f} of the queue",
            f"precision in the top {TOP:.0%}: {self.top_precision:.2f} (whole queue: {self.precision:.2f})",
        ]


def queue_order(alert_ids: Sequence[str], priorities: Sequence[float]) -> list[str]:
    """Highest priority first; ties by alert id."""
    return [a for _, a in sorted(zip(priorities, alert_ids, strict=True), key=lambda pa: (-pa[0], pa[1]))]


def queue_measures(
    alert_ids: Sequence[str], priorities: Sequence[float], truth: Mapping[str, AlertTruth]
) -> QueueMeasures:
    order = queue_order(alert_ids, priorities)
    per_pattern = any(truth[a].found for a in order)
    if per_pattern:
        goal: set[str] = set().union(*(truth[a].found for a in order))
    else:
        goal = {a for a in order if truth[a].true}
    seen: set[str] = set()
    read = 0
    for n, a in enumerate(order, 1):
        if seen >= goal:
            break
        seen |= truth[a].found if per_pattern else ({a} if truth[a].true else set())
        read = n
    top = order[: math.ceil(len(order) * TOP)]
    top_precision = sum(truth[a].true for a in top) / len(top) if top else 0.0
    precision = sum(truth[a].true for a in order) / len(order) if order else 0.0
    return QueueMeasures(len(order), len(goal), per_pattern, read, top_precision, precision)
