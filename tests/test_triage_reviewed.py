"""Inverse-propensity weights for labels learnt from reviewers (triage/reviewed.py), checked against
what they must do: the decided cases of a band, each counted 1 / its band's chance, stand for every
case of the band (unless the chance was floored)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstone.triage.registry import review_sampled
from flagstone.triage.reviewed import BANDS, MIN_PROPENSITY, NEGATIVE, POSITIVE, CaseRow, band_of, propensities

STATES = ["open", "escalated", "proposed", "approved", "filed", "dismissed"]
priorities = st.one_of(st.none(), st.floats(0, 1))
rows = st.lists(st.tuples(priorities, st.sampled_from(STATES)), min_size=1, max_size=300)


@given(rows)
@settings(max_examples=200, deadline=None)
def test_weights_of_decided_cases_stand_for_their_band(cases: list[tuple[float | None, str]]) -> None:
    made = [CaseRow(f"a{i}", s, None, p) for i, (p, s) in enumerate(cases)]
    chance, table = propensities(made)
    bands = band_of([r.priority for r in made])
    for b in set(bands):
        members = [i for i, x in enumerate(bands) if x == b]
        decided = [i for i in members if made[i].state in POSITIVE | NEGATIVE]
        assert len({chance[i] for i in members}) == 1  # one chance per band
        p = chance[members[0]]
        assert MIN_PROPENSITY <= p <= 1
        if decided and len(decided) / len(members) >= MIN_PROPENSITY:
            assert abs(sum(1 / chance[i] for i in decided) - len(members)) < 1e-6 * len(members)
    assert sum(int(v["cases"]) for v in table.values()) == len(made)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=500))
def test_bands_follow_priority_and_are_about_equal(ps: list[float]) -> None:
    bands = band_of(list(ps))
    assert all(0 <= b < BANDS for b in bands)
    ranked = sorted(zip(ps, bands, strict=True))
    assert all(b1 <= b2 for (_, b1), (_, b2) in pairwise(ranked))  # never lower for more
    assert band_of([None, *ps])[0] == -1  # unscored cases have their own band


def test_review_sample_draw_is_fixed_and_near_its_share() -> None:
    ids = [f"{i:024x}" for i in range(20_000)]
    picked = [review_sampled("m1", a, 0.02) for a in ids]
    assert picked == [review_sampled("m1", a, 0.02) for a in ids]
    assert 0.015 < sum(picked) / len(ids) < 0.025
    assert picked != [review_sampled("m2", a, 0.02) for a in ids]  # another model draws anew
    assert not any(review_sampled("m1", a, 0.0) for a in ids)
