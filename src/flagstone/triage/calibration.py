"""Isotonic calibration: the model's raw score (log-odds) -> a probability that reads as one.

A pool-adjacent-violators fit in numpy rather than scikit-learn's ``IsotonicRegression``: it is
forty lines, it keeps scikit-learn (and its pickles) out of the ``triage`` extra, and the fitted
curve is plain data (two lists of floats in ``calibration.json``), which is what a model artefact
should hold.

Isotonic rather than Platt: the trees are trained with ``scale_pos_weight`` on an earlier period,
so their raw scores are shifted and need not follow a sigmoid; isotonic regression assumes only
that a higher raw score means a likelier positive. Its price is that it needs enough labelled
alerts in the calibration period, which the model card states.

Each pooled block becomes one knot at its weighted mean raw score, and the curve is linear between
knots and flat beyond the outer ones. PAV makes block values strictly increasing, so the curve is
strictly increasing between the outer knots: ordering by priority then keeps the model's order.
The values are clipped to ``[1/(n+1), n/(n+1)]`` for ``n`` calibration alerts: a period of ``n``
alerts cannot show a probability of exactly 0 or 1, and a reviewer should not read one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flagstone.errors import ModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Isotonic:
    """A monotone, piecewise-linear map from raw score to probability."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        xs, ys = np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)
        if (
            len(xs) == 0
            or len(xs) != len(ys)
            or not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)))
            or np.any(np.diff(xs) <= 0)
            or np.any(np.diff(ys) < 0)
            or ys[0] < 0
            or ys[-1] > 1
        ):
            raise ModelError("calibration: knots must be finite, x strictly and y weakly increasing in [0, 1]")

    def __call__(self, raw: npt.ArrayLike) -> FloatArray:
        return np.interp(np.asarray(raw, dtype=float), self.x, self.y)

    def secant(self, raw: FloatArray, base: float) -> FloatArray:
        """Per alert, (f(raw) - f(base)) / (raw - base): how many probability points one unit of
        log-odds is worth between the base and this alert. Where ``raw`` is (almost) the base, the
        slope of the curve there."""
        raw = np.asarray(raw, dtype=float)
        delta = raw - base
        h = 1e-6
        local = float((self(base + h)[()] - self(base - h)[()]) / (2 * h))
        close = np.abs(delta) < 1e-9
        safe = np.where(close, 1.0, delta)
        return np.where(close, local, (self(raw) - self(base)[()]) / safe)

    def to_json(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, data: Any) -> Isotonic:
        try:
            if data["method"] != "isotonic":
                raise ModelError(f"calibration: unknown method {data['method']!r}")
            return cls(tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"calibration: not a calibration curve ({exc})") from None


def fit_isotonic(raw: FloatArray, label: FloatArray, weight: FloatArray) -> Isotonic:
    """The weighted least-squares non-decreasing fit of ``label`` on ``raw`` (pool adjacent
    violators). Rows of weight 0 are left out; the caller guarantees some weight remains."""
    keep = weight > 0
    raw, label, weight = raw[keep], label[keep], weight[keep]
    order = np.argsort(raw, kind="stable")
    raw, label, weight = raw[order], label[order], weight[order]
    # Equal raw scores are one block from the start: a function gives them one value.
    uniq, start = np.unique(raw, return_index=True)
    sw = np.add.reduceat(weight, start)
    sx = uniq * sw
    sy = np.add.reduceat(weight * label, start)
    blocks: list[list[float]] = []  # [sum w*x, sum w, sum w*y]
    for bx, bw, by in zip(sx.tolist(), sw.tolist(), sy.tolist(), strict=True):
        blocks.append([bx, bw, by])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][1] >= blocks[-1][2] / blocks[-1][1]:
            last = blocks.pop()
            for i in range(3):
                blocks[-1][i] += last[i]
    floor = 1.0 / (len(raw) + 1)
    xs: list[float] = []
    ys: list[float] = []
    for bx, bw, by in blocks:
        x, y = bx / bw, min(max(by / bw, floor), 1.0 - floor)
        if xs and x <= xs[-1]:  # two blocks whose means round to one float: keep the higher value
            ys[-1] = y
        else:
            xs.append(x)
            ys.append(y)
    return Isotonic(tuple(xs), tuple(ys))
