"""The calibration curves and the validation figures, each against an independent oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagstone.errors import ModelError
from flagstone.triage import calibration, metrics
from flagstone.triage.calibration import Isotonic, Platt, fit_isotonic, fit_platt


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def test_pool_adjacent_violators_on_a_worked_example() -> None:
    # y = 1 0 0 1 1: the first three pool to 1/3 (at their mean raw 2), the last two to 1 (at 4.5),
    # clipped to 5/6 since five alerts cannot show a probability of 1.
    curve = fit_isotonic(np.array([1.0, 2, 3, 4, 5]), np.array([1.0, 0, 0, 1, 1]), np.ones(5))
    assert curve.x == (2.0, 4.5)
    assert curve.y == pytest.approx((1 / 3, 5 / 6))
    assert curve(np.array([0.0, 2.0, 3.25, 9.0])) == pytest.approx([1 / 3, 1 / 3, (1 / 3 + 5 / 6) / 2, 5 / 6])


def isotonic_oracle(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[float]:
    """The weighted isotonic regression at each distinct x by the max-min formula:
    f(i) = max over k <= i of min over j >= i of the weighted mean of y[k..j]."""
    xs = np.unique(x)
    sy = np.array([np.sum((w * y)[x == v]) for v in xs])
    sw = np.array([np.sum(w[x == v]) for v in xs])
    m = len(xs)
    return [
        max(min(sy[k : j + 1].sum() / sw[k : j + 1].sum() for j in range(i, m)) for k in range(i + 1)) for i in range(m)
    ]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(-5, 5), st.booleans(), st.sampled_from([0.5, 1.0, 2.0, 3.0])), min_size=1, max_size=25
    )
)
def test_isotonic_fit_equals_the_max_min_formula_and_is_monotone(rows: list[tuple[int, bool, float]]) -> None:
    x = np.array([float(r[0]) for r in rows])
    y = np.array([float(r[1]) for r in rows])
    w = np.array([r[2] for r in rows])
    curve = fit_isotonic(x, y, w)
    floor = 1 / (len(rows) + 1)
    expected = sorted({round(min(max(v, floor), 1 - floor), 9) for v in isotonic_oracle(x, y, w)})
    assert sorted({round(v, 9) for v in curve.y}) == expected  # clipping may make two knots equal
    grid = np.linspace(-7, 7, 301)
    assert np.all(np.diff(curve(grid)) >= 0)
    assert np.all((curve(grid) >= floor) & (curve(grid) <= 1 - floor))


def test_isotonic_and_platt_recover_known_probabilities() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1.5, 20000)
    truth = sigmoid(2 * raw - 1)
    y = (rng.random(20000) < truth).astype(float)
    grid = np.linspace(-2, 2, 41)
    iso = fit_isotonic(raw, y, np.ones_like(y))
    assert np.max(np.abs(iso(grid) - sigmoid(2 * grid - 1))) < 0.06
    platt = fit_platt(raw, y, np.ones_like(y))
    assert platt.a == pytest.approx(2, abs=0.1) and platt.b == pytest.approx(-1, abs=0.1)
    assert np.max(np.abs(platt(grid) - sigmoid(2 * grid - 1))) < 0.02
    # Weights that double the positives move the curve as duplicating them would.
    w = np.where(y > 0, 2.0, 1.0)
    doubled = fit_platt(
        np.concatenate([raw, raw[y > 0]]), np.concatenate([y, y[y > 0]]), np.ones(len(y) + int(y.sum()))
    )
    assert fit_platt(raw, y, w).a == pytest.approx(doubled.a, rel=1e-3)


def test_the_method_follows_the_number_of_labels() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(size=1000)
    y = (rng.random(1000) < sigmoid(raw)).astype(float)
    assert isinstance(calibration.fit(raw, y, np.ones(1000)), Isotonic)
    assert isinstance(calibration.fit(raw[:300], y[:300], np.ones(300)), Platt)


def test_a_curve_against_the_model_keeps_the_order() -> None:
    # On a period where the raw score is worse than chance, Platt gives everyone the period's rate.
    raw = np.arange(20.0)
    y = (raw < 10).astype(float)
    curve = fit_platt(raw, y, np.ones(20))
    assert curve.a == 0
    assert np.all(np.diff(curve(raw)) == 0)
    assert 0.4 < float(curve(np.array(0.0))) < 0.6


def test_curves_round_trip_as_data_and_refuse_nonsense() -> None:
    for curve in (Isotonic((0.0, 1.0), (0.1, 0.9)), Platt(1.5, -2.0)):
        assert calibration.from_json(curve.to_json()) == curve
    for bad in (
        {"method": "isotonic", "x": [1, 0], "y": [0.1, 0.2]},
        {"method": "isotonic", "x": [0, 1], "y": [0.5, 0.2]},
        {"method": "isotonic", "x": [0], "y": [1.5]},
        {"method": "isotonic", "x": [], "y": []},
        {"method": "platt", "a": -1, "b": 0},
        {"method": "platt", "a": "x", "b": 0},
        {"method": "spline"},
        {"x": [0]},
        [],
        None,
    ):
        with pytest.raises(ModelError):
            calibration.from_json(bad)


def test_secant_is_the_priority_change_per_log_odds() -> None:
    for curve in (Isotonic((-1.0, 0.0, 2.0), (0.1, 0.3, 0.7)), Platt(1.0, 0.0)):
        raw = np.array([-3.0, -0.5, 0.0, 1.0, 5.0])
        s = curve.secant(raw, 0.0)
        moved = raw != 0
        np.testing.assert_allclose((curve(raw) - curve(np.array(0.0)))[moved], (s * raw)[moved], atol=1e-12)
    assert Isotonic((-1.0, 0.0, 2.0), (0.1, 0.3, 0.7)).secant(np.array([0.5]), 0.5)[0] == pytest.approx(0.2)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.sampled_from([0.5, 1.0, 3.0])), min_size=2, max_size=20
    ).filter(lambda r: len({b for _, b, _ in r}) == 2)
)
def test_auc_equals_counting_pairs(rows: list[tuple[int, bool, float]]) -> None:
    s = np.array([float(r[0]) for r in rows])
    y = np.array([float(r[1]) for r in rows])
    w = np.array([r[2] for r in rows])
    won = total = 0.0
    for i, j in itertools.product(range(len(rows)), repeat=2):
        if y[i] == 1 and y[j] == 0:
            pair = w[i] * w[j]
            total += pair
            won += pair * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    assert metrics.auc(s, y, w) == pytest.approx(won / total)


def test_average_precision_top_precision_and_calibration_error() -> None:
    s, y, w = np.array([3.0, 2.0, 1.0]), np.array([1.0, 0.0, 1.0]), np.ones(3)
    assert metrics.average_precision(s, y, w) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.average_precision(np.array([1.0, 3.0, 2.0]), y, w) == pytest.approx(0.5 * 1 / 2 + 0.5 * 2 / 3)
    scores = np.arange(100.0)
    labels = (scores >= 95).astype(float)
    assert metrics.precision_at_top(scores, labels, np.ones(100), 0.1) == pytest.approx(0.5)
    assert metrics.precision_at_top(scores, labels, np.ones(100), 0.05) == 1.0
    # Groups whose mean probability is their share of positives: no calibration error.
    p = np.repeat([0.0, 0.5, 1.0], 4)
    truth = np.array([0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1], dtype=float)
    assert metrics.calibration_error(p, truth, np.ones(12), bins=3) == 0
    assert metrics.calibration_error(np.full(12, 0.9), truth, np.ones(12), bins=3) == pytest.approx(
        (0.9 + 0.4 + 0.1) / 3
    )
