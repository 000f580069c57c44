"""What scoring gives: per alert a priority and the contribution of every input to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Scores:
    """One row per alert of the scored table, in its order.

    Two scales, both exact for their own sum:

    - ``contributions`` (alerts x inputs) are TreeSHAP values in **log-odds** of the model's raw
      score: ``base + contributions.sum(axis=1) == raw``.
    - ``points`` (alerts x inputs) are the same contributions in **probability points** of the
      priority: each input's log-odds times the calibration's secant slope between the base and
      this alert, so ``base_priority + points.sum(axis=1) == priority``. This is the scale a
      reviewer reads ("+0.21": this raised the priority by 21 points); per input it is a share of
      the change in proportion to its log-odds, since the calibration is not a straight line.
    """

    model_version: str
    alert_ids: tuple[str, ...]
    rule_ids: tuple[str, ...]
    inputs: tuple[str, ...]  # "rule_id", then the features in the model's order
    values: FloatArray  # (alerts, features): the feature values scored, NaN where unknown
    priority: FloatArray  # calibrated probability, 0-1
    raw: FloatArray  # the model's raw score (log-odds)
    base: float  # the raw score before any input is known (the training mean of TreeSHAP)
    base_priority: float
    contributions: FloatArray  # log-odds
    points: FloatArray  # probability points
    sentences: Mapping[str, str]  # feature -> sentence template with {value}

    def __len__(self) -> int:
        return len(self.alert_ids)

    def to_table(self) -> pa.Table:
        """``alert_id``, ``priority``, ``raw_score``: what a store keeps per alert."""
        return pa.table(
            {
                "alert_id": pa.array(self.alert_ids, pa.string()),
                "priority": pa.array(self.priority, pa.float64()),
                "raw_score": pa.array(self.raw, pa.float64()),
            }
        )
