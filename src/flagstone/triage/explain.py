"""Why an alert got its priority, in sentences a reviewer reads.

Each reason is one input's TreeSHAP contribution, shown in **probability points** of the priority
(``Scores.points``): "the receiving account was paid by 11 accounts it had never dealt with
before: +0.21" means this fact raised the priority by 0.21 (21 percentage points) from the base
priority, the priority of an alert about which nothing is known. The reasons of an alert, all of
them, add up to its priority minus the base; the explanation shows the largest few by size. The
log-odds contribution is kept beside it (``Reason.log_odds``) for whoever audits the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flagstone.triage.scores import Scores
from flagstone.triage.table import RULE

RULE_SENTENCE = "the alert was raised by rule {value}"
SHOWN = 0.005  # smaller than this rounds to +0.00: not a reason worth a reviewer's time


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | str | None  # the feature's value (None: unknown); the rule id for "rule_id"
    points: float  # probability points of the priority
    log_odds: float  # the TreeSHAP contribution to the raw score
    text: str  # "<sentence>: +0.21"


@dataclass(frozen=True)
class Explanation:
    alert_id: str
    priority: float
    base_priority: float
    reasons: tuple[Reason, ...]

    @property
    def text(self) -> str:
        if not self.reasons:
            base = f"{self.base_priority:.2f}"
            return f"priority {self.priority:.2f}: no single fact moved it far from the base of {base}"
        return "; ".join(r.text for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. for the ``explanation`` of an alert export."""
        return {
            "priority": self.priority,
            "base_priority": self.base_priority,
            "text": self.text,
            "reasons": [
                {"feature": r.feature, "value": r.value, "points": r.points, "log_odds": r.log_odds, "text": r.text}
                for r in self.reasons
            ],
        }


def sentence(template: str, value: float | str | None, feature: str) -> str:
    """The template said of ``value``; an unknown value is said as unknown, not as a number."""
    if value is None:
        return f"{feature.replace('_', ' ')} is not known"
    return template.format(value=value)


def explain(scores: Scores, *, top: int = 3) -> list[Explanation]:
    """Per alert of ``scores`` (in order), its ``top`` reasons by size, largest first; reasons that
    round to +0.00 are left out."""
    out = []
    for i, alert_id in enumerate(scores.alert_ids):
        points = scores.points[i]
        order = sorted(range(len(scores.inputs)), key=lambda j: (-abs(float(points[j])), scores.inputs[j]))
        reasons = []
        for j in order[: max(top, 0)]:
            if abs(points[j]) < SHOWN:
                break
            feature = scores.inputs[j]
            value: float | str | None
            if feature == RULE:
                value, template = scores.rule_ids[i], RULE_SENTENCE
            else:
                v = float(scores.values[i, j - 1])
                value, template = (None if math.isnan(v) else v), scores.sentences[feature]
            said = sentence(template, value, feature)
            reasons.append(
                Reason(feature, value, float(points[j]), float(scores.contributions[i, j]), f"{said}: {points[j]:+.2f}")
            )
        out.append(Explanation(alert_id, float(scores.priority[i]), scores.base_priority, tuple(reasons)))
    return out


def explanation_column(scores: Scores, *, top: int = 3) -> list[str]:
    """The explanation text of each alert, for a table column."""
    return [e.text for e in explain(scores, top=top)]
