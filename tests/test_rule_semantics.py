"""The documented semantics, case by case, on every engine (see docs/rules.md, "Semantics")."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from conftest import Runner, ev, write_rule


def count_rule(tmp: Path, n: int = 2, window: str = "1h", **extra: object) -> object:
    return write_rule(tmp, kind="window", window=window, aggregates={"n": "count(*)"}, having=f"n >= {n}", **extra)


def test_window_excludes_its_left_edge(runner: Runner, tmp_path: Path) -> None:
    # Events exactly W apart are never in one window: (t - W, t].
    rule = count_rule(tmp_path)
    assert runner(rule, [ev("e1", 0), ev("e2", 1), ev("e3", 2)]) == []


def test_window_includes_events_just_inside(runner: Runner, tmp_path: Path) -> None:
    rule = count_rule(tmp_path)
    found = runner(rule, [ev("e1", 0), ev("e2", 0.999)])
    assert [f.fire for f in found] == [("s", "e2")]
    assert found[0].evidence == (("s", "e1"), ("s", "e2"))


def test_ties_in_time_are_ordered_by_event_id(runner: Runner, tmp_path: Path) -> None:
    # Two events at the same instant: the window of the first (by event_id) holds only itself,
    # so the rule fires at the second one, whatever order the events arrived in.
    rule = count_rule(tmp_path)
    found = runner(rule, [ev("b", 5), ev("a", 5)])
    assert [f.fire for f in found] == [("s", "b")]
    assert found[0].evidence == (("s", "a"), ("s", "b"))


def test_one_alert_per_episode_and_rearm(runner: Runner, tmp_path: Path) -> None:
    rule = count_rule(tmp_path)
    events = [ev("e1", 0), ev("e2", 0.5), ev("e3", 0.7), ev("e4", 5), ev("e5", 5.5)]
    found = runner(rule, events)
    # e2 starts an episode; e3 continues it; e4 is alone (re-arms); e5 starts a new one.
    assert [f.fire for f in found] == [("s", "e2"), ("s", "e5")]
    assert found[1].values_dict == {"n": 2}


def test_groups_are_separate_and_null_groups_are_left_out(runner: Runner, tmp_path: Path) -> None:
    rule = count_rule(tmp_path)
    events = [ev("e1", 0, actor="a"), ev("e2", 0.1, actor="b"), ev("e3", 0.2, actor=None), ev("e4", 0.3, actor=None)]
    assert runner(rule, events) == []


def test_match_filters_before_windowing(runner: Runner, tmp_path: Path) -> None:
    rule = count_rule(tmp_path, match="kind = 'cash'")
    events = [ev("e1", 0, kind="cash"), ev("e2", 0.1, kind="card"), ev("e3", 0.2, kind="cash")]
    found = runner(rule, events)
    assert [f.evidence for f in found] == [(("s", "e1"), ("s", "e3"))]


def test_aggregates_values_and_nulls(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path,
        kind="window",
        window="1d",
        aggregates={
            "n": "count(*)",
            "n_amount": "count(amount)",
            "total": "sum(amount)",
            "mean": "avg(amount)",
            "top": "max(amount)",
            "low": "min(amount)",
            "peers": "count_distinct(counterparty)",
        },
        having="n >= 4",
    )
    events = [
        ev("e1", 0, amount="9500.00", counterparty="k1"),
        ev("e2", 1, amount="9800.50", counterparty="k2"),
        ev("e3", 2, amount=None, counterparty="k1"),
        ev("e4", 3, amount="9900", counterparty=None),
    ]
    (found,) = runner(rule, events)
    assert found.values_dict == {
        "n": 4,
        "n_amount": 3,
        "total": Decimal("29200.50"),
        "mean": float(Decimal("29200.50")) / 3,
        "top": Decimal("9900"),
        "low": Decimal("9500"),
        "peers": 2,
    }


def test_having_with_entity_attribute(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path,
        kind="window",
        window="30d",
        match="actor.pep",
        aggregates={"spent": "sum(amount)"},
        having="spent > 3 * actor.monthly_income",
    )
    entities = {
        "a": {"pep": True, "monthly_income": Decimal("1000")},
        "b": {"pep": False, "monthly_income": Decimal(1)},
    }
    events = [
        ev("e1", 0, amount=2000),
        ev("e2", 24, amount=1000),  # 3000: not above 3x
        ev("e3", 48, amount=1),  # 3001: fires
        ev("f1", 0, actor="b", amount=10_000),  # not a PEP
        ev("g1", 0, actor="c", amount=10_000),  # no profile: NULL, never fires
    ]
    found = runner(rule, events, entities)
    assert [(f.group, f.fire) for f in found] == [((("actor", "a"),), ("s", "e3"))]


def test_basket_counts_distinct_listed_categories(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path, kind="basket", window="5d", categories=["p.a", "p.b", "p.c"], min_distinct=3, match="kind = 'buy'"
    )
    events = [
        ev("e1", 0, kind="buy", category="p.a"),
        ev("e2", 10, kind="buy", category="p.a"),
        ev("e3", 20, kind="buy", category="other"),
        ev("e4", 30, kind="buy", category="p.b"),
        ev("e5", 40, kind="buy", category="p.c"),
        ev("e6", 200, kind="buy", category="p.c"),
    ]
    (found,) = runner(rule, events)
    assert found.fire == ("s", "e5")
    assert found.values_dict == {"distinct": 3, "events": 4}
    assert found.evidence == (("s", "e1"), ("s", "e2"), ("s", "e4"), ("s", "e5"))


def test_condition_rule_episodes(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="condition", match="kind = 'buy'", condition="quantity >= 10")
    events = [
        ev("e1", 0, kind="buy", quantity=12),
        ev("e2", 1, kind="buy", quantity=15),  # same episode as e1
        ev("e3", 2, kind="other", quantity=1),  # not matched: does not re-arm
        ev("e4", 3, kind="buy", quantity=1),  # re-arms
        ev("e5", 4, kind="buy", quantity=20),
    ]
    found = runner(rule, events)
    assert [f.fire for f in found] == [("s", "e1"), ("s", "e5")]
    assert found[0].values_dict == {"kind": "buy", "quantity": Decimal(12)}


def test_attrs_and_like(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="condition", match="category like 'pre%'", condition="attrs.channel_code = 'W'")
    events = [
        ev("e1", 0, category="precursor", attrs={"channel_code": "W"}),
        ev("e2", 1, category="other", actor="b", attrs={"channel_code": "W"}),
        ev("e3", 2, category="pre", actor="c", attrs={"channel_code": "S"}),
    ]
    assert [f.fire for f in runner(rule, events)] == [("s", "e1")]


def test_division_by_zero_is_null(runner: Runner, tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="condition", condition="amount / quantity > 1 or amount / quantity is null")
    events = [ev("e1", 0, amount=5, quantity=0), ev("e2", 1, actor="b", amount=5, quantity=10)]
    assert [f.fire for f in runner(rule, events)] == [("s", "e1")]
