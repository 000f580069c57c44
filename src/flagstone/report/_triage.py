"""The report's triage part: the active model's card, drift since training, and the top of the
queue with each alert's explanation. Without an active model it says so and how to get one.

Drift compares the alerts the model trained on (the card's ``drift_reference``) with the alerts in
the store now: the active model's priorities as stored, and the most important features computed
afresh (triage/drift.py says how PSI is read).
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from flagstone.alerts import active_scores
from flagstone.store import Store
from flagstone.triage import drift
from flagstone.triage.features import feature_table
from flagstone.triage.registry import active_model_id, stored_model

TOP = 20


def triage_section(store: Store) -> str:
    if not active_scores(store.con):
        return (
            "<section id='triage'><h2>Triage</h2><p class='note'>No triage model is active, so the queue is in "
            "severity order. Train one with <code>flagstone triage train</code> and have a supervisor "
            "<code>flagstone triage activate</code> it (docs/triage.md).</p></section>"
        )
    model_id = active_model_id(store.con)
    assert model_id is not None
    model = stored_model(store.con, model_id)
    card = model.card
    return (
        "<section id='triage'><h2>Triage: the queue's order and why</h2>"
        f"<p class='note'>Model <code>{escape(model_id)}</code> orders the queue. Its priority is the "
        "calibrated chance that an alert is worth a report; it orders and explains, and people decide.</p>"
        + _card(card)
        + _drift(store, model, card)
        + _queue(store, model_id)
        + "</section>"
    )


def _row(label: str, value: Any) -> str:
    return f"<tr><th>{escape(label)}</th><td>{escape(str(value))}</td></tr>"


def _card(card: dict[str, Any]) -> str:
    data, labels, figures = card.get("training_data", {}), card.get("labels", {}), card.get("validation", {})

    def fig(name: str) -> str:
        v = figures.get(name)
        return f"{v:.3f}" if isinstance(v, float) else "—"

    rows = [
        _row("trained by, at", f"{card.get('trained_by', '?')}, {card.get('trained_at', '?')}"),
        _row(
            "training data", f"{data.get('alerts', '?')} alerts from {data.get('from', '?')} to {data.get('to', '?')}"
        ),
        _row(
            "labels",
            f"{labels.get('source', '?')}: {labels.get('positives', '?')} positive, "
            f"{labels.get('negatives', '?')} negative",
        ),
        _row("features", ", ".join(f.get("name", "?") for f in card.get("features", []))),
        _row(
            "validation (newest 20 %, never trained on)",
            f"AUC {fig('auc')}, average precision {fig('average_precision')}, precision in the top 10 % "
            f"{fig('precision_top_10_percent')} (base rate {fig('base_rate')}), calibration error "
            f"{fig('calibration_error')}",
        ),
    ]
    limits = "".join(f"<li>{escape(str(x))}</li>" for x in card.get("known_limits", []))
    return (
        "<h3>Model card</h3><table class='card'><tbody>" + "".join(rows) + "</tbody></table>"
        f"<p class='note'>Known limits:</p><ul>{limits}</ul>"
    )


def _drift(store: Store, model: Any, card: dict[str, Any]) -> str:
    ref = card.get("drift_reference")
    if not isinstance(ref, dict):
        return (
            "<h3>Drift</h3><p class='note'>This model's card keeps no training distribution: "
            "retrain it to see drift.</p>"
        )
    priorities = np.array(
        [p for (p,) in store.con.execute(
            "SELECT priority FROM alert_scores WHERE model_id = ?", [model.version]
        ).fetchall()],
        dtype=np.float64,
    )  # fmt: skip
    rows = [("priority", drift.psi(ref["priority"], priorities))]
    wanted = list(ref.get("features", {}))
    if wanted:
        table = feature_table(store.con)
        for name in wanted:
            if name in table.column_names:
                values = np.array(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
                rows.append((name, drift.psi(ref["features"][name], values)))
    body = "".join(
        f"<tr><td><code>{escape(n)}</code></td><td>{'—' if v is None else f'{v:.3f}'}</td>"
        f"<td>{escape(drift.reading(v))}</td></tr>"
        for n, v in rows
    )
    return (
        "<h3>Drift since training</h3><p class='note'>Population stability index (PSI) of the priority "
        f"({len(priorities):,} alerts scored now) and of the model's most important features, against the "
        f"{escape(str(ref.get('alerts', 'training alerts')))}. Below {drift.STABLE}: stable; "
        f"above {drift.SHIFTED}: retrain.</p>"
        "<table><thead><tr><th>What</th><th>PSI</th><th>Reading</th></tr></thead><tbody>" + body + "</tbody></table>"
    )


def _queue(store: Store, model_id: str) -> str:
    rows = store.con.execute(
        "SELECT a.rule_id, a.group_key, s.priority, s.explanation FROM alert_scores s "
        "JOIN alerts a USING (alert_id) WHERE s.model_id = ? ORDER BY s.priority DESC, a.alert_id LIMIT ?",
        [model_id, TOP],
    ).fetchall()
    body = "".join(
        f"<tr><td><meter min='0' max='1' value='{p:.4f}'></meter> {p:.2f}</td><td><code>{escape(r)}</code></td>"
        f"<td><code>{escape(g)}</code></td><td>{escape(e)}</td></tr>"
        for r, g, p, e in rows
    )
    return (
        f"<h3>Top of the queue</h3><p class='note'>The {len(rows)} alerts a reviewer reads first, each with "
        "what raised or lowered its priority.</p><table><thead><tr><th>Priority</th><th>Rule</th><th>Group</th>"
        "<th>Why</th></tr></thead><tbody>" + body + "</tbody></table>"
    )
