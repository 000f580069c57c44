"""Labels from reviewers' decisions in the case database, weighted against the bias of what was read.

A case filed, or approved for filing, is a positive; a dismissed case is a negative (its reason is
counted in the model card); open, escalated and proposed cases are unlabelled.

Reviewers read the top of a priority-ordered queue, so reviewed alerts are not a random sample: a
model trained on them alone learns little about the alerts the previous model ranked low, and
keeps ranking them low. Two things counter that:

- the **review sample** (``registry.REVIEW_SAMPLE``): while a model is active, a random share of
  all alerts is shown first in the queue whatever its priority, so every priority band gets some
  decisions;
- **inverse-propensity weights**: the chance that an alert was reviewed is estimated per band of
  the priority its case was shown with (deciles of all cases' priorities; one band for cases never
  scored) as decided / all cases in the band. Each decision counts 1 / that chance, so a decision
  on a rarely read band stands for all the alerts like it that nobody read. Chances are floored at
  ``MIN_PROPENSITY`` so that one lucky decision cannot dominate training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlalchemy import func, select

from flagstone.errors import InputError
from flagstone.oversight.schema import case_alerts, cases
from flagstone.oversight.workflow import APPROVED, DISMISSED, FILED
from flagstone.triage.features import feature_table

POSITIVE = frozenset({FILED, APPROVED})
NEGATIVE = frozenset({DISMISSED})
BANDS = 10
MIN_PROPENSITY = 0.02
LABEL_SOURCE = (
    "reviewers' decisions in the case database (filed or approved: positive; dismissed: negative), "
    "each weighted by 1 / the share of cases decided in its priority band"
)


@dataclass(frozen=True)
class CaseRow:
    alert_id: str
    state: str
    closing_reason: str | None
    priority: float | None


@dataclass(frozen=True)
class Reviewed:
    features: pa.Table  # one row per decided case's alert
    labels: list[int]
    weights: list[float]
    details: dict[str, Any]  # for the model card: counts, reasons, propensities per band


def case_rows(engine: Any) -> list[CaseRow]:
    """One row per alert of every case (a case holds its scheme's alerts, case_alerts): a decision
    on the case labels each of them."""
    c, a = cases.c, case_alerts.c
    with engine.connect() as con:
        rows = con.execute(
            select(func.coalesce(a.alert_id, c.alert_id), c.state, c.closing_reason, c.priority)
            .select_from(cases.outerjoin(case_alerts, a.case_id == c.id))
            .order_by(c.id, a.alert_id)
        ).all()
    return [CaseRow(str(a), str(s), r, None if p is None else float(p)) for a, s, r, p in rows]


def band_of(priorities: list[float | None]) -> list[int]:
    """Per case its priority band: 0 .. BANDS-1 by rank among the scored cases, -1 when unscored."""
    scored = sorted(p for p in priorities if p is not None)
    if not scored:
        return [-1] * len(priorities)
    edges = [scored[min(len(scored) - 1, (k * len(scored)) // BANDS)] for k in range(1, BANDS)]
    return [-1 if p is None else int(np.searchsorted(edges, p, side="right")) for p in priorities]


def propensities(rows: list[CaseRow]) -> tuple[list[float], dict[str, dict[str, float]]]:
    """Per case the estimated chance that a case like it was decided, and the figures per band."""
    bands = band_of([r.priority for r in rows])
    decided = [r.state in POSITIVE | NEGATIVE for r in rows]
    total: Counter[int] = Counter(bands)
    done: Counter[int] = Counter(b for b, d in zip(bands, decided, strict=True) if d)
    chance = {b: max(MIN_PROPENSITY, done[b] / total[b]) for b in total}
    table = {
        ("unscored" if b < 0 else f"band {b + 1} of {BANDS}"): {
            "cases": float(total[b]),
            "decided": float(done[b]),
            "propensity": chance[b],
        }
        for b in sorted(total)
    }
    return [chance[b] for b in bands], table


def reviewed(con: duckdb.DuckDBPyConnection, rows: list[CaseRow]) -> Reviewed:
    """The decided cases' alerts with their features (from the store on ``con``), labels and
    inverse-propensity weights (mean 1 over the decided cases)."""
    chance, bands = propensities(rows)
    decided = {
        r.alert_id: (int(r.state in POSITIVE), 1.0 / p, r)
        for r, p in zip(rows, chance, strict=True)
        if r.state in POSITIVE | NEGATIVE
    }
    positives = sum(y for y, _, _ in decided.values())
    if not decided or positives == 0 or positives == len(decided):
        raise InputError(
            f"the case database holds {positives} filed or approved and {len(decided) - positives} dismissed "
            "cases: training needs decisions of both kinds (open cases carry no label)",
            field="--from-cases",
        )
    table = feature_table(con)
    ids = table.column("alert_id").to_pylist()
    keep = [i for i, a in enumerate(ids) if a in decided]
    missing = len(decided) - len(keep)
    table = table.take(keep)
    labels = [decided[a][0] for a in table.column("alert_id").to_pylist()]
    raw = np.array([decided[a][1] for a in table.column("alert_id").to_pylist()], dtype=np.float64)
    weights = (raw / raw.mean()).tolist() if len(raw) else []
    reasons = Counter(
        (r.closing_reason or "no reason given").strip()[:80] for _, _, r in decided.values() if r.state in NEGATIVE
    )
    details: dict[str, Any] = {
        "cases": len(rows),
        "decided": len(decided),
        "undecided_unlabelled": len(rows) - len(decided),
        "decided_without_alert_in_store": missing,
        "dismissal_reasons": dict(reasons.most_common(20)),
        "propensity_by_priority_band": bands,
        "min_propensity": MIN_PROPENSITY,
    }
    return Reviewed(table, labels, weights, details)
