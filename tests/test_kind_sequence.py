"""The ``sequence`` kind: oracle equality on random inputs, and its documented semantics by case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, ev, write_rule
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from kind_strategies import check_equal, kind_events, ledger_events, rule_text
from rule_strategies import entities, predicate

from flagstone.errors import RuleError
from flagstone.rules import load_rules

PASS_THROUGH = Path(__file__).resolve().parent.parent / "packs" / "aml-typologies" / "pass_through.yaml"

LINKS = [
    "amount >= 0.9 * a.amount",
    "b.amount > a.amount",
    "counterparty != a.counterparty",
    "b.counterparty = a.counterparty",
    "kind != a.kind",
    "a.amount is null",
    "place = a.place and quantity >= a.quantity",
    "amount + a.amount >= 10",
    "amount / a.amount > 0.5",
    "true",
    "category like 'c%'",
    "actor.pep",
    "attrs.tag = 'p'",
]


@st.composite
def sequence_rule(draw: st.DrawFn) -> str:
    links = draw(st.lists(st.sampled_from(LINKS), min_size=1, max_size=3))
    return rule_text(
        kind="sequence",
        match=draw(st.one_of(st.just("true"), predicate(1))),
        group_by=draw(st.sampled_from([["actor"], ["actor", "kind"], ["counterparty"]])),
        first=draw(st.one_of(st.just("true"), predicate(1))),
        then=f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({x})" for x in links),
        within=draw(st.sampled_from(["1h", "2h", "3h", "6h", "90m", "1us"])),
    )


# Links over legs: the account view's fields on both sides, and the event fields of before.
LEG_LINKS = [
    "direction = 'out' and amount >= 0.9 * a.amount",
    "other is null or a.other is null or other != a.other",
    "other = a.other",
    "direction != a.direction",
    "b.kind = a.kind",
    "a.account = account",
    "amount > a.amount",
    "true",
    "actor.pep",
    "counterparty = a.actor",
]


@st.composite
def accounts_rule(draw: st.DrawFn) -> str:
    """A sequence over the account view: random bookings (which events are credits), groups and
    links, so that mirrored bookings, self-transfers and NULL parties meet every engine."""
    links = draw(st.lists(st.sampled_from(LEG_LINKS), min_size=1, max_size=3))
    incoming = ["kind = 'y'", "false", "kind = 'y' or amount > 5", "counterparty is null", "actor.pep"]
    return rule_text(
        kind="sequence",
        match=draw(st.one_of(st.just("true"), predicate(1))),
        accounts={"incoming": draw(st.sampled_from(incoming))},
        group_by=draw(st.sampled_from([["account"], ["account", "kind"], ["other"], ["account", "direction"]])),
        first=draw(st.one_of(st.sampled_from(["direction = 'in'", "true", "direction = 'in' and amount >= 5"]))),
        then=f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({x})" for x in links),
        within=draw(st.sampled_from(["1h", "2h", "3h", "6h", "1us"])),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=accounts_rule(), evs=ledger_events(), ents=entities)
def test_account_view_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    found = check_equal(con, tmp_path_factory.getbasetemp() / "accounts", text, evs, ents)
    target(float(min(found, 5)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sequence_rule(), evs=kind_events(), ents=entities)
def test_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    found = check_equal(con, tmp_path_factory.getbasetemp() / "sequence", text, evs, ents)
    target(float(min(found, 5)))


def pass_through(tmp: Path, within: str = "48h") -> Any:
    return write_rule(
        tmp,
        kind="sequence",
        first="kind = 'in'",
        then="kind = 'out' and amount >= 0.9 * a.amount and counterparty != a.counterparty",
        within=within,
    )


def test_fires_at_b_with_the_pair_as_evidence(runner: Runner, tmp_path: Path) -> None:
    events = [
        ev("e1", 0, kind="in", amount=1000, counterparty="k1"),
        ev("e2", 10, kind="out", amount=950, counterparty="k2"),
    ]
    [found] = runner(pass_through(tmp_path), events)
    assert found.fire == ("s", "e2")
    assert found.evidence == (("s", "e1"), ("s", "e2"))
    assert found.values_dict == {
        "a_amount": 1000,
        "b_kind": "out",
        "b_amount": 950,
        "gap_hours": 10.0,
        "earlier_events": 1,
    }


def test_a_exactly_t_before_b_is_outside(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path, within="2h")
    a = ev("e1", 0, kind="in", amount=100, counterparty="k1")
    assert len(runner(rule, [a, ev("e2", 1.999, kind="out", amount=95, counterparty="k2")])) == 1
    assert runner(rule, [a, ev("e2", 2, kind="out", amount=95, counterparty="k2")]) == []


def test_link_conditions_and_nulls(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path)
    events = [
        ev("e1", 0, kind="in", amount=1000, counterparty="k1"),
        ev("e2", 1, kind="out", amount=899, counterparty="k2"),  # under 90%
        ev("e3", 2, kind="out", amount=1000, counterparty="k1"),  # back to the sender
        ev("e4", 3, kind="out", amount=1000, counterparty=None),  # NULL link: not a match
    ]
    assert runner(rule, events) == []


def test_same_instant_orders_by_event_id(runner: Runner, tmp_path: Path) -> None:
    # B must come after A in (ts, event_id, source) order, even at the same instant.
    rule = pass_through(tmp_path)
    before = [ev("b", 5, kind="in", amount=10, counterparty="k1"), ev("a", 5, kind="out", amount=10, counterparty="k2")]
    after = [ev("a", 5, kind="in", amount=10, counterparty="k1"), ev("b", 5, kind="out", amount=10, counterparty="k2")]
    assert runner(rule, before) == []
    assert [f.fire for f in runner(rule, after)] == [("s", "b")]


def test_one_alert_per_episode_and_all_qualifying_a_in_evidence(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path)
    events = [
        ev("e1", 0, kind="in", amount=100, counterparty="k1"),
        ev("e2", 1, kind="in", amount=90, counterparty="k1"),
        ev("e3", 2, kind="out", amount=95, counterparty="k2"),  # fires: e1 and e2 qualify
        ev("e4", 3, kind="out", amount=95, counterparty="k2"),  # same episode
        ev("e5", 4, kind="in", amount=5, counterparty="k1"),  # test false here: re-armed
        ev("e6", 5, kind="out", amount=95, counterparty="k2"),  # a new episode
    ]
    found = runner(rule, events)
    assert [f.fire for f in found] == [("s", "e3"), ("s", "e6")]
    assert found[0].evidence == (("s", "e1"), ("s", "e2"), ("s", "e3"))
    assert found[0].values_dict["a_amount"] == 90  # the latest qualifying A
    assert found[0].values_dict["earlier_events"] == 2


def test_a_refs_outside_then_are_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="field 'first'"):
        write_rule(tmp_path, kind="sequence", first="a.amount > 1", then="true", within="1h")
    with pytest.raises(RuleError, match="earlier event A"):
        write_rule(tmp_path, kind="sequence", first="true", then="a.actor.pep", within="1h")
    with pytest.raises(RuleError, match="cannot compare"):
        write_rule(tmp_path, kind="sequence", first="true", then="a.amount = 'x'", within="1h")


# -- the account view: one-sided and two-sided ledgers ---------------------------------------


def one_sided() -> list[dict[str, Any]]:
    """A pays B 10,000; B pays C 9,500 five hours later: one row per transfer, on the payer."""
    return [
        ev("t1", 0, kind="transfer", actor="A", counterparty="B", amount=10000),
        ev("t2", 5, kind="transfer", actor="B", counterparty="C", amount=9500),
    ]


def credits(first: str) -> list[dict[str, Any]]:
    """The same transfers booked on the payees too, with ids sorting after ('u') or before ('c')
    the transfers' own."""
    return [
        ev(f"{first}1", 0, kind="credit", actor="B", counterparty="A", amount=10000),
        ev(f"{first}2", 5, kind="credit", actor="C", counterparty="B", amount=9500),
    ]


def test_one_sided_ledger_pass_through(runner: Runner) -> None:
    [found] = runner(load_rules([PASS_THROUGH]).rules[0], one_sided())
    assert found.group_key == "account=B"
    assert found.fire == ("s", "t2")
    assert found.evidence == (("s", "t1"), ("s", "t2"))
    # Each amount once, from its own payment: nothing adds the two hops up.
    assert found.values_dict == {
        "a_amount": 10000,
        "b_amount": 9500,
        "b_direction": "out",
        "gap_hours": 5.0,
        "earlier_events": 1,
    }


def test_two_sided_ledger_gives_the_same_finding(runner: Runner) -> None:
    rule = load_rules([PASS_THROUGH]).rules[0]
    [one] = runner(rule, one_sided())
    assert runner(rule, one_sided() + credits("u")) == [one]
    # When B's credit comes first in event order it stands for the movement instead of A's
    # transfer: the same alert (group, firing event, values), its evidence naming B's record.
    [other] = runner(rule, one_sided() + credits("c"))
    assert (other.group, other.fire, other.values) == (one.group, one.fire, one.values)
    assert other.evidence == (("s", "c1"), ("s", "t2"))


def test_the_old_two_sided_form_still_fires(runner: Runner) -> None:
    # Credits from outside the bank (no transfer of the payer in the data), as in the demo.
    events = [
        ev("c1", 0, kind="credit", actor="B", counterparty="X", amount=20000),
        ev("t1", 30, kind="cash_withdrawal", actor="B", amount=19000),
    ]
    [found] = runner(load_rules([PASS_THROUGH]).rules[0], events)
    assert (found.group_key, found.evidence) == ("account=B", (("s", "c1"), ("s", "t1")))


def account_rule(tmp: Path, **extra: Any) -> Any:
    body = {
        "kind": "sequence",
        "accounts": {"incoming": "kind = 'credit'"},
        "first": "direction = 'in'",
        "then": "direction = 'out'",
        "within": "48h",
        **extra,
    }
    return write_rule(tmp, **body)


def test_each_booking_pairs_once(runner: Runner, tmp_path: Path) -> None:
    # A pays B twice at one instant; B books only one credit: two movements arrive, not one or three.
    events = [
        ev("t1", 0, kind="transfer", actor="A", counterparty="B", amount=50),
        ev("t2", 0, kind="transfer", actor="A", counterparty="B", amount=50),
        ev("u1", 0, kind="credit", actor="B", counterparty="A", amount=50),
        ev("t3", 1, kind="transfer", actor="B", counterparty="C", amount=90),
    ]
    [found] = runner(account_rule(tmp_path), events)
    assert found.group_key == "account=B"
    assert found.evidence == (("s", "t1"), ("s", "t2"), ("s", "t3"))
    assert found.values_dict["earlier_events"] == 2


def test_outgoing_legs_are_the_accounts_own_bookings(runner: Runner, tmp_path: Path) -> None:
    # C's credit from B says money left B, but B booked no payment: no outgoing leg of B, so an
    # account outside the ledger (a payer known only from its payees' credits) never passes money on.
    events = [
        ev("u1", 0, kind="credit", actor="B", counterparty="A", amount=50),
        ev("u2", 1, kind="credit", actor="C", counterparty="B", amount=50),
    ]
    assert runner(account_rule(tmp_path), events) == []


def test_self_transfers_and_unknown_parties_make_no_second_leg(runner: Runner, tmp_path: Path) -> None:
    rule = account_rule(tmp_path, group_by=["account", "direction"], first="true", then="true")
    events = [
        ev("t1", 0, kind="transfer", actor="B", counterparty="B", amount=5),  # B's own outgoing leg only
        ev("t2", 1, kind="transfer", actor="B", counterparty=None, amount=5),
        ev("t3", 2, kind="transfer", actor=None, counterparty="B", amount=5),  # B's incoming leg only
    ]
    found = runner(rule, events)
    assert [(f.group_key, f.evidence) for f in found] == [("account=B, direction=out", (("s", "t1"), ("s", "t2")))]


def test_account_view_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"field 'match'.*account view"):
        account_rule(tmp_path, match="direction = 'in'")
    with pytest.raises(RuleError, match=r"field 'accounts'.*incoming"):
        account_rule(tmp_path, accounts={"booked": "true"})
    with pytest.raises(RuleError, match=r"field 'group_by'.*account"):
        account_rule(tmp_path, group_by=["kind"])
    with pytest.raises(RuleError, match=r"field 'first'.*unknown field 'direction'"):
        write_rule(tmp_path, kind="sequence", first="direction = 'in'", then="true", within="1h")
    with pytest.raises(RuleError, match=r"field 'group_by'.*cannot group by 'account'"):
        write_rule(tmp_path, kind="sequence", group_by=["account"], first="true", then="true", within="1h")
