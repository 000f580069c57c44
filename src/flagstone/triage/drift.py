"""Population stability: how far the scores and the most important features of the alerts scored
now have moved from those the model was trained on.

At training, ``reference`` keeps for the priority and for each of the model's most important
features (by total gain) the deciles of the training values and the share of values in each of
their bins, plus the share unknown (NaN). Later, ``psi`` puts new values in the same bins:
PSI = sum over bins of (now - then) * ln(now / then), shares floored at 0.0001 so an empty bin
counts without dividing by zero. Customary reading: below 0.1 stable, 0.1 to 0.25 a moderate shift
worth watching, above 0.25 a shift that calls for retraining and a look at what changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
FLOOR = 1e-4
BINS = 10
TOP_FEATURES = 5
STABLE, SHIFTED = 0.1, 0.25


def reference(values: FloatArray) -> dict[str, Any]:
    """The bins of ``values`` (deciles of the known ones) and the share in each, NaN last."""
    values = np.asarray(values, dtype=np.float64)
    known = values[~np.isnan(values)]
    edges = sorted({float(q) for q in np.quantile(known, np.linspace(0, 1, BINS + 1)[1:-1])}) if len(known) else []
    return {"edges": edges, "shares": _shares(values, edges)}


def _shares(values: FloatArray, edges: list[float]) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    known = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(np.array(edges), known, side="left"), minlength=len(edges) + 1)
    return [float(c) / n for c in counts] + [float(n - len(known)) / n]


def psi(ref: Mapping[str, Any], values: FloatArray) -> float | None:
    """Population stability index of ``values`` against a ``reference``; None without values."""
    if len(values) == 0:
        return None
    then = [max(FLOOR, float(s)) for s in ref["shares"]]
    now = [max(FLOOR, s) for s in _shares(values, list(ref["edges"]))]
    return float(sum((b - a) * math.log(b / a) for a, b in zip(then, now, strict=True)))


def reading(value: float | None) -> str:
    if value is None:
        return "no alerts to compare"
    if value < STABLE:
        return "stable"
    return "moderate shift: watch it" if value < SHIFTED else "large shift: retrain and find out what changed"
