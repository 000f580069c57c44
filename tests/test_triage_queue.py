"""A triage model's scores order the review queue and say why; they never change a case.

Scores are written into the store as a scorer would (``triage_models``, ``alert_scores``) and
copied to the cases by a sync. Hypothesis drives random scores and activations through syncs and
shows that no case changes state, assignee, proposal or anything but its three score columns, and
that the audit log gains no case action.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oversight_data import Setup
from sqlalchemy import func, select
from web_client import login

from flagstone.oversight import cases as ops
from flagstone.oversight.schema import audit_entries, cases
from flagstone.oversight.sync import sync_alerts
from flagstone.store import Store
from flagstone.web import create_web_app

T0 = datetime(2026, 1, 1)
SCORE_COLUMNS = {"priority", "explanation", "triage_model", "review_sample"}


def put_scores(s: Setup, model_id: str, scores: dict[str, float], *, active: bool = True) -> None:
    with Store(s.store) as st:
        if active:
            st.con.execute("UPDATE triage_models SET active = FALSE")
        st.con.execute(
            "INSERT OR REPLACE INTO triage_models (model_id, created_at, card, files, active) "
            "VALUES (?, ?, '{}', '{}', ?)",
            [model_id, T0, active],
        )
        for alert_id, p in scores.items():
            text = f"planted by the test: {p:+.2f}"
            st.con.execute(
                "INSERT OR REPLACE INTO alert_scores (alert_id, model_id, priority, explanation, contributions, "
                "scored_at) VALUES (?, ?, ?, ?, '[]', ?)",
                [alert_id, model_id, p, text, T0],
            )
        sync_alerts(s.ov, st)


def case_rows(s: Setup) -> dict[int, dict[str, Any]]:
    with s.ov.engine.connect() as con:
        return {r.id: dict(r._mapping) for r in con.execute(select(cases))}


def audit_size(s: Setup) -> int:
    with s.ov.engine.connect() as con:
        return int(con.execute(select(func.count()).select_from(audit_entries)).scalar_one())


def test_the_queue_is_ordered_by_priority_once_scored_and_shows_why(setup: Setup) -> None:
    before = case_rows(setup)
    alert_ids = {r["alert_id"]: cid for cid, r in before.items()}
    assert len(alert_ids) >= 3
    ranked = sorted(alert_ids)[:3]
    put_scores(setup, "m1", {ranked[0]: 0.2, ranked[1]: 0.9, ranked[2]: 0.5})
    after = case_rows(setup)
    assert {after[alert_ids[a]]["priority"] for a in ranked} == {0.2, 0.9, 0.5}
    assert all(after[alert_ids[a]]["triage_model"] == "m1" for a in ranked)

    client: TestClient = login(create_web_app(setup.ov), "aud")
    html = client.get("/queue?state=").text  # no sort given: priority, since cases are scored
    order = [int(c) for c in re.findall(r'href="/cases/(\d+)" class="case-link"', html)]
    assert order[:3] == [alert_ids[ranked[1]], alert_ids[ranked[2]], alert_ids[ranked[0]]]
    assert 'value="priority" selected' in html and "<meter" in html
    page = client.get(f"/cases/{alert_ids[ranked[1]]}").text
    assert "Priority 0.90" in page and "planted by the test: +0.90" in page and "people decide" in page

    # Another model activated: the cases follow it; a model without a score for an alert clears it.
    put_scores(setup, "m2", {ranked[0]: 0.7})
    again = case_rows(setup)
    assert again[alert_ids[ranked[0]]]["priority"] == 0.7
    assert again[alert_ids[ranked[1]]]["priority"] is None
    assert ops.default_sort(setup.ov) == "priority"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_scores_change_no_case(setup: Setup, data: st.DataObject) -> None:
    before = case_rows(setup)
    entries = audit_size(setup)
    alert_ids = sorted(r["alert_id"] for r in before.values())
    for round_ in range(data.draw(st.integers(1, 3))):
        chosen = data.draw(st.lists(st.sampled_from(alert_ids), unique=True, max_size=20))
        scores = {a: data.draw(st.floats(0, 1)) for a in chosen}
        put_scores(setup, f"m{round_}", scores, active=data.draw(st.booleans()))
    after = case_rows(setup)
    assert set(after) == set(before)
    for case_id, row in before.items():
        kept = {k: v for k, v in after[case_id].items() if k not in SCORE_COLUMNS}
        assert kept == {k: v for k, v in row.items() if k not in SCORE_COLUMNS}
    assert audit_size(setup) == entries  # no case action was taken, so nothing was audited
