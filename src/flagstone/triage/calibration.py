"""Calibration: the model's raw score (log-odds) -> a probability that reads as one.

The trees are trained with ``scale_pos_weight`` on an earlier period, so their raw score is
shifted and need not be a probability; a curve fitted on the later calibration period maps it to
one. Two curves, both non-decreasing, so ordering by priority keeps the model's order:

- **isotonic** (pool adjacent violators) when the calibration period holds at least
  ``ISOTONIC_MIN`` positives and as many negatives: it assumes only that a higher raw score means a
  likelier positive, but with fewer labels its steps follow the noise of a few alerts;
- **Platt** (a logistic curve through the raw score) otherwise: two parameters, stable on a few
  dozen positives, right when the raw score is roughly a shifted, scaled log-odds, which a
  boosted model's raw score roughly is.

Both are fitted here in numpy rather than with scikit-learn: they are a few dozen lines, they keep
scikit-learn (and its pickles) out of the ``triage`` extra, and the fitted curve is plain data in
``calibration.json``, which is what a model artefact should hold.

An isotonic block becomes one knot at its weighted mean raw score; the curve is linear between
knots (strictly increasing there, since PAV leaves block values strictly increasing) and flat
beyond the outer ones. Its values are clipped to ``[1/(n+1), n/(n+1)]`` for ``n`` calibration
alerts, and Platt's targets are Platt's smoothed ones: a period of ``n`` alerts cannot show a
probability of exactly 0 or 1, and a reviewer should not read one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from flagstone.errors import ModelError

FloatArray = npt.NDArray[np.float64]


ISOTONIC_MIN = 200  # positives (and negatives) a calibration period needs for an isotonic curve


class Calibration(Protocol):
    """A non-decreasing map from raw score (log-odds) to probability."""

    def __call__(self, raw: npt.ArrayLike) -> FloatArray: ...

    def secant(self, raw: FloatArray, base: float) -> FloatArray:
        """Per alert, (f(raw) - f(base)) / (raw - base): how many probability points one unit of
        log-odds is worth between the base and this alert; where ``raw`` is (almost) the base, the
        slope of the curve there."""
        ...

    def to_json(self) -> dict[str, Any]: ...


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1 + np.tanh(0.5 * z)), dtype=np.float64)  # no overflow for large |z|


def _secant(f: Calibration, raw: FloatArray, base: float) -> FloatArray:
    raw = np.asarray(raw, dtype=float)
    delta = raw - base
    h = 1e-6
    local = float((f(base + h)[()] - f(base - h)[()]) / (2 * h))
    close = np.abs(delta) < 1e-9
    safe = np.where(close, 1.0, delta)
    return np.asarray(np.where(close, local, (f(raw) - f(base)[()]) / safe), dtype=np.float64)


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
        return _secant(self, raw, base)

    def to_json(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}


@dataclass(frozen=True)
class Platt:
    """``sigmoid(a * raw + b)``: Platt scaling, the logistic curve through the raw score."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or self.a < 0:
            raise ModelError("calibration: Platt's slope is finite and not negative, its offset finite")

    def __call__(self, raw: npt.ArrayLike) -> FloatArray:
        return _sigmoid(self.a * np.asarray(raw, dtype=float) + self.b)

    def secant(self, raw: FloatArray, base: float) -> FloatArray:
        return _secant(self, raw, base)

    def to_json(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}


def fit_platt(raw: FloatArray, label: FloatArray, weight: FloatArray) -> Platt:
    """Weighted logistic regression of the label on the raw score, with Platt's targets
    ((n+ + 1) / (n+ + 2) and 1 / (n- + 2) instead of 1 and 0), so that no probability is 0 or 1;
    Newton's method with step halving. A slope that comes out negative (a model worse than chance
    on this period) is set to 0: every alert gets the period's rate, and the order is kept."""
    w = weight / np.mean(weight)
    pos = float(np.sum(w * label))
    neg = float(np.sum(w * (1 - label)))
    target = np.where(label > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))

    def loss(a: float, b: float) -> float:
        z = a * raw + b
        return float(np.sum(w * (np.logaddexp(0, z) - target * z)))

    a, b = 0.0, math.log((pos + 1) / (neg + 1))
    current = loss(a, b)
    for _ in range(100):
        q = _sigmoid(a * raw + b)
        g = np.array([np.sum(w * (q - target) * raw), np.sum(w * (q - target))])
        h = w * q * (1 - q)
        hess = np.array([[np.sum(h * raw * raw), np.sum(h * raw)], [np.sum(h * raw), np.sum(h)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, g)
        t = 1.0
        while t > 1e-10:
            na, nb = a - t * float(step[0]), b - t * float(step[1])
            new = loss(na, nb)
            if new <= current:
                break
            t /= 2
        else:
            break
        done = current - new < 1e-12 * max(1.0, abs(current))
        a, b, current = na, nb, new
        if done:
            break
    if a < 0:
        a, b = 0.0, math.log((pos + 1) / (neg + 1))
    return Platt(a, b)


def from_json(data: Any) -> Calibration:
    try:
        method = data["method"]
        if method == "isotonic":
            return Isotonic(tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"]))
        if method == "platt":
            return Platt(float(data["a"]), float(data["b"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"calibration: not a calibration curve ({exc})") from None
    raise ModelError(f"calibration: unknown method {method!r}")


def fit(raw: FloatArray, label: FloatArray, weight: FloatArray) -> Calibration:
    """Isotonic when the period holds at least ``ISOTONIC_MIN`` positives and as many negatives,
    Platt otherwise."""
    keep = weight > 0
    if min(int(np.sum(label[keep])), int(np.sum(1 - label[keep]))) >= ISOTONIC_MIN:
        return fit_isotonic(raw, label, weight)
    return fit_platt(raw, label, weight)


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
