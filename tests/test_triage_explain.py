"""Explanations: each alert's largest contributions, as sentences with a signed size in
probability points that add up to the priority."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest
from triage_data import SENTENCES, later, synthetic

from flagstone.triage.explain import explain, explanation_column, sentence
from flagstone.triage.model import TriageModel, train
from flagstone.triage.scores import Scores


@pytest.fixture(scope="module")
def model() -> TriageModel:
    history = synthetic(2000, seed=1)
    return train(history.table, history.labels, descriptions=SENTENCES, trained_by="tester")


@pytest.fixture(scope="module")
def scores(model: TriageModel) -> Scores:
    return model.score(synthetic(500, seed=3, start=later(synthetic(2000, seed=1)), prefix="e").table)


def one_alert(new_payers: float | None, amount_z: float, noise: float | None, rule: str) -> pa.Table:
    return pa.table(
        {
            "alert_id": ["x"],
            "rule_id": [rule],
            "fire_ts": pa.array([0], pa.timestamp("us", tz="UTC")),
            "new_payers": pa.array([new_payers], pa.float64()),
            "amount_z": pa.array([amount_z], pa.float64()),
            "noise": pa.array([noise], pa.float64()),
        }
    )


def test_the_planted_fact_is_the_first_reason_with_its_number(model: TriageModel) -> None:
    scores = model.score(one_alert(11, 0.0, 0.1, "aml.structuring"))
    (e,) = explain(scores)
    assert e.priority > 0.6
    first = e.reasons[0]
    assert first.feature == "new_payers" and first.value == 11 and first.points > 0.1
    assert re.fullmatch(
        r"the receiving account was paid by 11 accounts it had never dealt with before: \+0\.\d\d", first.text
    )
    assert first.text.endswith(f"{first.points:+.2f}")
    # And an ordinary alert's first reason lowers its priority.
    (low,) = explain(model.score(one_alert(0, -1.5, 0.1, "aml.graph.fan_in")))
    assert low.priority < e.priority and low.reasons[0].points < 0 and ": -0." in low.reasons[0].text


def test_reasons_are_the_largest_points_in_order_and_match_the_scores(scores: Scores) -> None:
    explanations = explain(scores, top=2)
    assert [e.alert_id for e in explanations] == list(scores.alert_ids)
    for i, e in enumerate(explanations):
        assert len(e.reasons) <= 2
        sizes = [abs(r.points) for r in e.reasons]
        assert sizes == sorted(sizes, reverse=True)
        largest = sorted(np.abs(scores.points[i]), reverse=True)
        assert sizes == pytest.approx([s for s in largest[:2] if s >= 0.005])
        for r in e.reasons:
            j = scores.inputs.index(r.feature)
            assert r.points == scores.points[i, j] and r.log_odds == scores.contributions[i, j]
            assert re.search(r": [+-]\d\.\d\d$", r.text)
        assert e.priority == scores.priority[i] and e.base_priority == scores.base_priority


def test_the_rule_and_an_unknown_value_are_said_in_words(model: TriageModel) -> None:
    (e,) = explain(model.score(one_alert(None, 0.0, None, "aml.structuring")), top=4)
    texts = {r.feature: r.text for r in e.reasons}
    assert texts["rule_id"].startswith("the alert was raised by rule aml.structuring: +0.")
    assert texts["new_payers"].startswith("new payers is not known: ")
    assert sentence(SENTENCES["amount_z"], 2.345, "amount_z") == (
        "the amount is 2.3 standard deviations above the account's usual"
    )


def test_an_alert_nothing_moves_says_so_and_exports_as_json(scores: Scores) -> None:
    flat = Scores(
        model_version=scores.model_version,
        alert_ids=("q",),
        rule_ids=("aml.structuring",),
        inputs=scores.inputs,
        values=np.zeros((1, 3)),
        priority=np.array([scores.base_priority]),
        raw=np.array([scores.base]),
        base=scores.base,
        base_priority=scores.base_priority,
        contributions=np.zeros((1, 4)),
        points=np.array([[0.001, -0.002, 0.0, 0.004]]),
        sentences=scores.sentences,
    )
    (e,) = explain(flat)
    assert e.reasons == ()
    assert e.text == f"priority {scores.base_priority:.2f}: no single fact moved it far from the base of " + (
        f"{scores.base_priority:.2f}"
    )
    data = json.loads(json.dumps([x.as_dict() for x in explain(scores)], allow_nan=False))
    assert data[0]["text"] == explanation_column(scores)[0]
    assert scores.to_table().column_names == ["alert_id", "priority", "raw_score"]
