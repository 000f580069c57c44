"""Population stability (triage/drift.py) against what it must say: a sample from the training
distribution is stable, a shifted one is not, and more unknown values count as a shift."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flagstone.triage import drift


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_same_population_is_stable_and_a_shift_is_not(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = rng.lognormal(3, 1, 5000)
    ref = drift.reference(train)
    assert len(ref["shares"]) == len(ref["edges"]) + 2 and abs(sum(ref["shares"]) - 1) < 1e-9
    assert drift.psi(ref, train) < 1e-9  # the training values themselves
    assert drift.psi(ref, rng.lognormal(3, 1, 5000)) < drift.STABLE
    assert drift.psi(ref, rng.lognormal(4, 1, 5000)) > drift.SHIFTED
    unknown = np.concatenate([rng.lognormal(3, 1, 3000), np.full(2000, np.nan)])
    assert drift.psi(ref, unknown) > drift.SHIFTED
    assert drift.psi(ref, np.array([])) is None


def test_readings() -> None:
    assert drift.reading(0.01) == "stable"
    assert "watch" in drift.reading(0.2) and "retrain" in drift.reading(0.3)
