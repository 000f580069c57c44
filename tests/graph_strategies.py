"""Hypothesis strategies for the ``graph`` kind: small transfer graphs and random graph rules.

Few accounts, a coarse time grid and a small pool of amounts make the hard cases common: cycles
whose hops tie in time (order then rests on event_id), repeated edges, self-transfers, zero,
negative and missing amounts, events on the window edge.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

BASE = datetime(2024, 3, 1)
# Weighted towards three accounts so that cycles (and near-cycles) are frequent.
ACCOUNTS = ["a", "b", "c", "a", "b", "c", "d"]
_VALID = [Decimal("100"), Decimal("100"), Decimal("100"), Decimal("105"), Decimal("120"), Decimal("90.5")]
AMOUNTS = [*_VALID, *_VALID, Decimal("0"), Decimal("-100"), None]


@st.composite
def transfers(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=max_size))
    out: list[dict[str, Any]] = []
    for i in range(n):
        hours = draw(st.integers(min_value=0, max_value=6))
        out.append(
            {
                "source": draw(st.sampled_from(["s1", "s1", "s2"])),
                "event_id": f"{draw(st.integers(min_value=0, max_value=30)):02d}-{i}",
                "ts": BASE + timedelta(hours=hours, microseconds=draw(st.sampled_from([0, 0, 0, 1]))),
                "kind": draw(st.sampled_from(["transfer", "transfer", "transfer", "x"])),
                "actor": draw(st.sampled_from([*ACCOUNTS, None])),
                "counterparty": draw(st.sampled_from([*ACCOUNTS, None])),
                "amount": draw(st.sampled_from(AMOUNTS)),
                "currency": "EUR",
                "item": None,
                "category": None,
                "quantity": None,
                "place": None,
                "channel": None,
                "attrs": None,
            }
        )
    return out


@st.composite
def graph_rules(draw: st.DrawFn) -> str:
    typology = draw(st.sampled_from(["fan_out", "fan_in", "cycle", "cycle"]))
    doc: dict[str, Any] = {
        "id": "t.graph",
        "version": 1,
        "title": "graph",
        "severity": "low",
        "kind": "graph",
        "typology": typology,
        "window": f"{draw(st.integers(min_value=2, max_value=8))}h",
    }
    if draw(st.booleans()):
        doc["match"] = "kind = 'transfer'"
    if typology == "cycle":
        low = draw(st.sampled_from([2, 2, 2, 3, 4]))
        doc["min_length"] = low
        doc["max_length"] = draw(st.integers(min_value=low, max_value=5))
        tol = draw(st.sampled_from([None, None, 0, 0.1, 0.25]))
        if tol is not None:
            doc["amount_tolerance"] = tol
        degree = draw(st.sampled_from([None, None, 3, 6]))
        if degree is not None:
            doc["max_degree"] = degree
    else:
        doc["min_counterparties"] = draw(st.integers(min_value=1, max_value=3))
    return json.dumps(doc)
