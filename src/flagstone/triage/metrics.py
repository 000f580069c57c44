"""The validation figures of a model card, weighted (a reviewer-learnt label carries its
inverse-propensity weight, so the figures estimate the whole queue, not the reviewed part).

Ranking figures take the raw score: the queue is ordered by priority, then raw score, and since the
calibration never decreases that is exactly the order of the raw score.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def auc(score: FloatArray, label: FloatArray, weight: FloatArray) -> float:
    """Area under the ROC curve: the chance that a positive outranks a negative (ties count half)."""
    _, group = np.unique(score, return_inverse=True)
    pos = np.bincount(group, weights=weight * label)
    neg = np.bincount(group, weights=weight * (1 - label))
    total = pos.sum() * neg.sum()
    if total <= 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float(np.sum(pos * (below + 0.5 * neg)) / total)


def average_precision(score: FloatArray, label: FloatArray, weight: FloatArray) -> float:
    """Precision averaged over the recall steps, reading from the highest score down; alerts with
    equal scores are read together."""
    uniq, group = np.unique(-score, return_inverse=True)
    pos = np.bincount(group, weights=weight * label, minlength=len(uniq))
    neg = np.bincount(group, weights=weight * (1 - label), minlength=len(uniq))
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    if tp[-1] <= 0:
        return math.nan
    read = tp + fp
    precision = np.divide(tp, read, out=np.zeros_like(tp), where=read > 0)
    return float(np.sum(pos / tp[-1] * precision))


def precision_at_top(score: FloatArray, label: FloatArray, weight: FloatArray, share: float = 0.1) -> float:
    """The (weighted) share of positives among the top ``share`` of alerts by score."""
    n = max(1, math.ceil(share * len(score)))
    top = np.argsort(-score, kind="stable")[:n]
    w = weight[top]
    return float(np.sum(w * label[top]) / np.sum(w)) if np.sum(w) > 0 else math.nan


def calibration_error(probability: FloatArray, label: FloatArray, weight: FloatArray, bins: int = 10) -> float:
    """Expected calibration error: alerts in ``bins`` groups of equal size by probability; the
    weighted mean gap between each group's mean probability and its share of positives."""
    order = np.argsort(probability, kind="stable")
    total = float(np.sum(weight))
    if total <= 0:
        return math.nan
    error = 0.0
    for part in np.array_split(order, min(bins, len(order))):
        w = weight[part]
        sw = float(np.sum(w))
        if sw > 0:
            gap = abs(float(np.sum(w * probability[part]) - np.sum(w * label[part]))) / sw
            error += sw / total * gap
    return error
