"""Hypothesis strategies for small random event sets and random rules (as YAML text).

Timestamps sit on a coarse grid (whole hours, plus a few exact duplicates) so that ties in time
and events exactly on a window edge are common, which is where engines usually go wrong.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

BASE = datetime(2024, 3, 1)
ACTORS = ["a", "b", "c"]
CATEGORIES = ["c1", "c2", "c3", "c4"]

amounts = st.one_of(
    st.none(),
    st.integers(min_value=-200, max_value=2000).map(lambda c: Decimal(c) / 100),
    st.sampled_from([Decimal("0"), Decimal("5"), Decimal("10"), Decimal("9.99")]),
)


@st.composite
def events(draw: st.DrawFn, max_size: int = 25) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=max_size))
    out: list[dict[str, Any]] = []
    for i in range(n):
        hours = draw(st.integers(min_value=0, max_value=12))
        micros = draw(st.sampled_from([0, 0, 0, 1, 999_999]))
        attrs = draw(st.one_of(st.none(), st.fixed_dictionaries({"tag": st.sampled_from(["p", "q"])})))
        out.append(
            {
                "source": draw(st.sampled_from(["s1", "s2"])),
                # ids drawn from a small pool (then made unique per source) so that ordering
                # by event_id is exercised in both directions.
                "event_id": f"{draw(st.integers(min_value=0, max_value=99)):02d}-{i}",
                "ts": BASE + timedelta(hours=hours, microseconds=micros),
                "kind": draw(st.sampled_from(["x", "y"])),
                "actor": draw(st.sampled_from([*ACTORS, None])),
                "counterparty": draw(st.sampled_from(["k1", "k2", "k3", None])),
                "amount": draw(amounts),
                "currency": "EUR",
                "item": None,
                "category": draw(st.sampled_from([*CATEGORIES, None])),
                "quantity": draw(st.one_of(st.none(), st.integers(0, 5).map(Decimal))),
                "place": draw(st.sampled_from(["v1", "v2", "v3"])),
                "channel": None,
                "attrs": json.dumps(attrs) if attrs is not None else None,
            }
        )
    return out


entities = st.fixed_dictionaries(
    {
        a: st.fixed_dictionaries(
            {
                "pep": st.sampled_from([True, False, None]),
                "monthly_income": st.sampled_from([None, Decimal("5"), Decimal("12.50"), Decimal("0")]),
                "country": st.sampled_from(["SE", "DE", None]),
            }
        )
        for a in ACTORS[:2]
    }
)

number = st.sampled_from(["0", "1", "2", "5", "9.99", "10", "2.5", "1e1", "-1"])
num_field = st.sampled_from(["amount", "quantity"])
text_test = st.one_of(
    st.sampled_from(
        [
            "kind = 'x'",
            "kind != 'y'",
            "counterparty is not null",
            "category is null",
            "category like 'c%'",
            "category not like '%3'",
            "place in ('v1', 'v2')",
            "category not in ('c1')",
            "attrs.tag = 'p'",
            "actor.pep",
            "not actor.pep",
            "actor.country = 'SE'",
            "counterparty = 'k1'",
        ]
    ),
)


@st.composite
def numeric_test(draw: st.DrawFn) -> str:
    left = draw(num_field)
    if draw(st.booleans()):
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        left = f"{left} {op} {draw(st.sampled_from(['amount', 'quantity', '2', '0.5']))}"
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    return f"{left} {op} {draw(number)}"


@st.composite
def predicate(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.one_of(text_test, numeric_test(), st.just("true")))
    a, b = draw(predicate(depth - 1)), draw(predicate(depth - 1))
    return draw(st.sampled_from([f"({a}) and ({b})", f"({a}) or ({b})", f"not ({a})"]))


AGGREGATES = [
    "count(*)",
    "count(amount)",
    "sum(amount)",
    "avg(amount)",
    "max(amount)",
    "min(amount)",
    "count_distinct(counterparty)",
    "count(distinct place)",
    "sum(quantity)",
    "max(category)",
    "sum(amount * quantity)",
    "min(amount / quantity)",
]


@st.composite
def window_rule(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(range(len(AGGREGATES))), min_size=1, max_size=3, unique=True))
    aggs = {f"a{i}": AGGREGATES[i] for i in names}
    tests = []
    for name, text in aggs.items():
        if text == "max(category)":
            tests.append(f"{name} >= '{draw(st.sampled_from(CATEGORIES))}'")
        else:
            threshold = draw(st.one_of(number, st.sampled_from(["2", "3", "4"])))
            tests.append(f"{name} {draw(st.sampled_from(['>=', '>', '<', '=']))} {threshold}")
    having = f" {draw(st.sampled_from(['and', 'or']))} ".join(tests)
    group = draw(st.sampled_from([["actor"], ["actor", "kind"], ["counterparty"]]))
    if group[0] == "actor" and draw(st.booleans()):
        having = f"({having}) or a_extra > 2 * actor.monthly_income"
        aggs["a_extra"] = "sum(amount)"
    return _yaml(
        kind="window",
        match=draw(st.one_of(st.just("true"), predicate(1))),
        group_by=group,
        window=f"{draw(st.integers(1, 10))}h",
        aggregates=aggs,
        having=having,
        evidence=draw(st.sampled_from(["window", "window", "episode"])),
    )


@st.composite
def basket_rule(draw: st.DrawFn) -> str:
    cats = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=4, unique=True))
    # The categories as written, or as list parameters: one, or two lists that may overlap.
    written: object = cats
    params: dict[str, object] = {}
    shape = draw(st.sampled_from(["written", "one list", "two lists"]))
    if shape == "one list":
        params, written = {"watched": cats}, "$watched"
    elif shape == "two lists":
        cut = draw(st.integers(0, len(cats)))
        first, second = cats[:cut] or cats[:1], cats[cut:] or cats[-1:]
        params, written = {"first": first, "second": second}, ["$first", "$second"]
    return _yaml(
        kind="basket",
        **({"params": params} if params else {}),
        match=draw(predicate(1)),
        group_by=["actor"],
        window=f"{draw(st.integers(1, 12))}h",
        categories=written,
        min_distinct=draw(st.integers(1, len(cats))),
        evidence=draw(st.sampled_from(["window", "episode"])),
    )


@st.composite
def condition_rule(draw: st.DrawFn) -> str:
    return _yaml(
        kind="condition",
        match=draw(predicate(1)),
        group_by=draw(st.sampled_from([["actor"], ["place"]])),
        condition=draw(predicate()),
    )


def _yaml(**body: Any) -> str:
    doc = {"id": "t.random", "version": 1, "title": "random", "severity": "low", **body}
    return json.dumps(doc)  # JSON is YAML


rules = st.one_of(window_rule(), basket_rule(), condition_rule())
