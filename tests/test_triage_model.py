"""The triage model learns a planted signal, measures itself on a later period, is reproducible to
the byte, reads as a probability, and survives a save and load unchanged."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import lightgbm  # type: ignore[import-untyped,unused-ignore]
import numpy as np
import pyarrow as pa
import pytest
from triage_data import SENTENCES, Synthetic, later, synthetic

from flagstone.errors import ModelError
from flagstone.triage import metrics
from flagstone.triage.model import TriageModel, train

WHEN = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def history() -> Synthetic:
    return synthetic(2000, seed=1)


@pytest.fixture(scope="module")
def model(history: Synthetic) -> TriageModel:
    return train(history.table, history.labels, descriptions=SENTENCES, trained_by="tester", trained_at=WHEN)


@pytest.fixture(scope="module")
def future(history: Synthetic) -> Synthetic:
    """Alerts of a later period, never seen in training."""
    return synthetic(3000, seed=2, start=later(history), prefix="f")


def test_the_planted_signal_is_learned_and_holds_on_a_later_period(model: TriageModel, future: Synthetic) -> None:
    scores = model.score(future.table)
    y = np.array(future.labels, dtype=float)
    ones = np.ones(len(y))
    assert scores.priority[y == 1].mean() > 2 * scores.priority[y == 0].mean()
    held_out_auc = metrics.auc(scores.raw, y, ones)
    best_possible = metrics.auc(future.truth, y, ones)
    assert held_out_auc > 0.75
    assert held_out_auc > best_possible - 0.05
    # The top of the queue is richer than the queue.
    assert metrics.precision_at_top(scores.raw, y, ones) > 2 * y.mean()
    # The model's own figures, on its own newest period, say the same.
    assert model.card["validation"]["auc"] > 0.7
    # The informative features carry the ranking; the noise feature barely moves it.
    size = np.abs(scores.contributions).mean(axis=0)
    by_name = dict(zip(scores.inputs, size, strict=True))
    assert by_name["noise"] < by_name["new_payers"] / 3
    assert by_name["noise"] < by_name["amount_z"] / 3


def test_without_a_signal_nothing_is_learned(history: Synthetic) -> None:
    # The oracle of the test above: the same tables with labels drawn at a fixed rate.
    blind = synthetic(2000, seed=1, signal=False)
    model = train(blind.table, blind.labels, descriptions=SENTENCES, trained_at=WHEN)
    future = synthetic(3000, seed=2, start=later(history), signal=False)
    auc = metrics.auc(model.score(future.table).raw, np.array(future.labels, float), np.ones(3000))
    assert 0.4 < auc < 0.6


def test_priority_is_calibrated_against_the_known_probability(model: TriageModel, future: Synthetic) -> None:
    scores = model.score(future.table)
    # Alerts in ten groups by priority: each group's mean priority is near its mean true probability.
    order = np.argsort(scores.priority)
    gaps = [abs(scores.priority[g].mean() - future.truth[g].mean()) for g in np.array_split(order, 10)]
    assert max(gaps) < 0.1
    assert np.mean(gaps) < 0.05
    assert model.card["validation"]["calibration_error"] < 0.15  # 400 alerts: mostly sampling noise
    # The priority never decreases with the raw score, so the queue keeps the model's order.
    by_raw = np.argsort(scores.raw, kind="stable")
    assert np.all(np.diff(scores.priority[by_raw]) >= 0)
    assert scores.priority.min() > 0 and scores.priority.max() < 1


def test_contributions_add_up_to_the_raw_score_and_points_to_the_priority(
    model: TriageModel, future: Synthetic
) -> None:
    scores = model.score(future.table)
    assert scores.contributions.shape == (3000, 4)
    assert scores.inputs == ("rule_id", "new_payers", "amount_z", "noise")
    np.testing.assert_allclose(scores.base + scores.contributions.sum(axis=1), scores.raw, atol=1e-9)
    np.testing.assert_allclose(scores.base_priority + scores.points.sum(axis=1), scores.priority, atol=1e-9)
    # Points have the sign of their log-odds: a fact that raises the odds never lowers the priority.
    assert np.all(scores.points * scores.contributions >= 0)


def test_training_twice_gives_the_same_bytes(history: Synthetic, model: TriageModel, tmp_path: Path) -> None:
    again = train(history.table, history.labels, descriptions=SENTENCES, trained_by="tester", trained_at=WHEN)
    assert again.version == model.version
    model.save(tmp_path / "one")
    again.save(tmp_path / "two")
    for name in ("model.txt", "inputs.json", "calibration.json", "card.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    # The rows' order in the table does not matter: training sorts by time.
    shuffled = np.random.default_rng(0).permutation(2000)
    third = train(
        history.table.take(pa.array(shuffled)),
        [history.labels[i] for i in shuffled],
        descriptions=SENTENCES,
        trained_at=WHEN,
    )
    assert third.version == model.version
    # Another seed is another model (bagging and feature sampling draw differently).
    other = train(history.table, history.labels, descriptions=SENTENCES, seed=7, trained_at=WHEN)
    assert other.version != model.version


def test_save_and_load_give_identical_scores(model: TriageModel, future: Synthetic, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    loaded = TriageModel.load(tmp_path / "m")
    assert loaded.version == model.version and loaded.card == model.card
    a, b = model.score(future.table), loaded.score(future.table)
    assert np.array_equal(a.priority, b.priority)
    assert np.array_equal(a.contributions, b.contributions)
    assert np.array_equal(a.points, b.points)
    loaded.save(tmp_path / "again")
    for path in (tmp_path / "m").iterdir():
        assert path.read_bytes() == (tmp_path / "again" / path.name).read_bytes()
    # Saving again into its own directory is fine; over another model is not.
    model.save(tmp_path / "m")
    blind = synthetic(600, seed=5, signal=False)
    other = train(blind.table, blind.labels, descriptions=SENTENCES, trained_at=WHEN)
    with pytest.raises(ModelError, match="already holds model sha256:"):
        other.save(tmp_path / "m")


def test_column_order_does_not_matter_but_the_feature_list_does(model: TriageModel, future: Synthetic) -> None:
    t = future.table
    reordered = t.select(["noise", "fire_ts", "amount_z", "alert_id", "new_payers", "rule_id"])
    assert np.array_equal(model.score(reordered).priority, model.score(t).priority)
    with pytest.raises(ModelError, match=r"missing noise; not in the model colour"):
        model.score(t.drop_columns(["noise"]).append_column("colour", pa.array([1.0] * t.num_rows)))
    with pytest.raises(ModelError, match=r"missing amount_z$"):
        model.score(t.drop_columns(["amount_z"]))


def test_an_unknown_rule_and_unknown_values_are_scored(model: TriageModel, future: Synthetic) -> None:
    t = future.table.slice(0, 5)
    t = t.set_column(1, "rule_id", pa.array(["aml.new_rule"] * 5))
    t = t.set_column(3, "new_payers", pa.array([None] * 5, pa.float64()))
    scores = model.score(t)
    assert np.all((scores.priority > 0) & (scores.priority < 1))
    assert len(model.score(future.table.slice(0, 0))) == 0


def test_weights_are_used_and_their_scale_is_not(history: Synthetic, model: TriageModel) -> None:
    n = history.table.num_rows
    doubled = train(history.table, history.labels, descriptions=SENTENCES, weights=[2.0] * n, trained_at=WHEN)
    assert doubled.version == model.version  # weights are normalised: only their ratios count
    # Weights that ignore the alerts of one rule (weight 0) give the model that never saw their labels.
    rules = history.table.column("rule_id").to_pylist()
    w = [0.0 if r == "aml.structuring" else 1.0 for r in rules]
    weighted = train(history.table, history.labels, descriptions=SENTENCES, weights=w, trained_at=WHEN)
    assert weighted.version != model.version
    assert weighted.card["validation"]["weighted"] is True
    assert weighted.card["labels"]["weights"].startswith("given")
    test = weighted.card["training_data"]["periods"]["test"]
    assert test["positive_weight"] < test["positives"]  # the zero-weight positives count for nothing


def test_the_card_says_what_a_reader_needs(model: TriageModel, history: Synthetic) -> None:
    card = json.loads(json.dumps(model.card))
    assert card["model_version"].startswith("sha256:") and len(card["model_version"]) == 71
    assert card["trained_by"] == "tester" and card["trained_at"] == "2026-06-01T12:00:00+00:00"
    data = card["training_data"]
    assert data["alerts"] == 2000 and data["from"] == "2026-01-01T00:00:00+00:00"
    assert data["to"] == "2026-01-02T09:19:00+00:00"
    periods = data["periods"]
    assert [periods[p]["alerts"] for p in ("fit", "calibration", "test")] == [1200, 400, 400]
    assert periods["fit"]["to"] < periods["calibration"]["from"] <= periods["calibration"]["to"]
    assert periods["calibration"]["to"] < periods["test"]["from"]
    assert card["labels"]["positives"] == sum(history.labels)
    assert card["labels"]["positives"] + card["labels"]["negatives"] == 2000
    assert [f["name"] for f in card["features"]] == ["new_payers", "amount_z", "noise"]
    assert 0.1 < card["features"][2]["unknown_share"] < 0.3
    v = card["validation"]
    assert set(v) >= {"auc", "average_precision", "precision_top_10_percent", "calibration_error", "period"}
    assert v["period"]["from"] == periods["test"]["from"]
    assert card["lightgbm_version"] == lightgbm.__version__
    assert card["training"]["params"]["deterministic"] is True
    assert card["training"]["params"]["scale_pos_weight"] == pytest.approx(
        periods["fit"]["negatives"] / periods["fit"]["positives"]
    )
    assert any("never closes" in limit for limit in card["known_limits"])
    # The figures are those of the newest 400 alerts, which neither the trees nor the curve saw.
    newest = model.score(history.table.slice(1600))
    y = np.array(history.labels[1600:], dtype=float)
    ones = np.ones(400)
    assert v["auc"] == pytest.approx(metrics.auc(newest.raw, y, ones))
    assert v["average_precision"] == pytest.approx(metrics.average_precision(newest.raw, y, ones))
    assert v["precision_top_10_percent"] == pytest.approx(metrics.precision_at_top(newest.raw, y, ones))
    assert v["calibration_error"] == pytest.approx(metrics.calibration_error(newest.priority, y, ones))
    assert v["base_rate"] == pytest.approx(y.mean())


def test_a_changed_or_missing_model_file_is_refused(model: TriageModel, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    text = (tmp_path / "m" / "model.txt").read_text()
    changed = text.replace("[deterministic: 1]", "[deterministic: 0]")
    assert changed != text
    (tmp_path / "m" / "model.txt").write_text(changed)
    with pytest.raises(ModelError, match=r"not the ones its card\.json names"):
        TriageModel.load(tmp_path / "m")
    (tmp_path / "m" / "model.txt").unlink()
    with pytest.raises(ModelError, match=r"model\.txt: cannot read"):
        TriageModel.load(tmp_path / "m")
    with pytest.raises(ModelError, match="cannot read"):
        TriageModel.load(tmp_path / "nowhere")
    model.save(tmp_path / "c")
    (tmp_path / "c" / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="not JSON"):
        TriageModel.load(tmp_path / "c")


TRIAGE = Path(__file__).resolve().parents[1] / "src" / "flagstone" / "triage"
CASE_MODULES = ("flagstone.oversight", "flagstone.web", "flagstone.store", "flagstone.scan", "flagstone.audit")


@pytest.mark.parametrize("module", ["model", "explain", "calibration", "metrics", "scores", "table"])
def test_the_model_cannot_touch_a_case(module: str) -> None:
    # Human oversight: a score orders and explains; these modules import nothing that holds cases.
    tree = ast.parse((TRIAGE / f"{module}.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith(CASE_MODULES)]
