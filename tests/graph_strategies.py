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
# Scatter-gather needs a source, k intermediaries and a destination: a few more accounts.
FLOW_ACCOUNTS = ["a", "b", "c", "d", "e", "a", "d"]
_VALID = [Decimal("100"), Decimal("100"), Decimal("100"), Decimal("105"), Decimal("120"), Decimal("90.5")]
AMOUNTS = [*_VALID, *_VALID, Decimal("0"), Decimal("-100"), None]


@st.composite
def transfers(
    draw: st.DrawFn, max_size: int = 30, accounts: list[str] = ACCOUNTS, min_size: int = 0
) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out: list[dict[str, Any]] = []
    for i in range(n):
        hours = draw(st.integers(min_value=0, max_value=6))
        out.append(
            {
                "source": draw(st.sampled_from(["s1", "s1", "s2"])),
                "event_id": f"{draw(st.integers(min_value=0, max_value=30)):02d}-{i}",
                "ts": BASE + timedelta(hours=hours, microseconds=draw(st.sampled_from([0, 0, 0, 1]))),
                "kind": draw(st.sampled_from(["transfer", "transfer", "transfer", "x"])),
                "actor": draw(st.sampled_from([*accounts, None])),
                "counterparty": draw(st.sampled_from([*accounts, None])),
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


@st.composite
def scatter_rules(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = {
        "id": "t.graph",
        "version": 1,
        "title": "graph",
        "severity": "low",
        "kind": "graph",
        "typology": draw(st.sampled_from(["scatter_gather", "gather_scatter"])),
        "window": f"{draw(st.integers(min_value=1, max_value=5))}h",  # often exactly a hop gap
        "min_counterparties": draw(st.sampled_from([1, 2, 2, 2, 3])),
    }
    if draw(st.booleans()):
        doc["match"] = "kind = 'transfer'"
    tol = draw(st.sampled_from([None, None, 0, 0.1, 0.25]))
    if tol is not None:
        doc["amount_tolerance"] = tol
    degree = draw(st.sampled_from([None, None, 3, 6]))
    if degree is not None:
        doc["max_degree"] = degree
    return json.dumps(doc)


@st.composite
def flows(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, Any]]:
    """Random transfers with two-hop chains s -> m -> d planted among them, often in twos that share
    their source and destination or their middle, so that scatter-gathers, gather-scatters, near
    misses and window edges are frequent. A chain may still be broken by a self-transfer, a bad
    amount or its order in time."""
    evs = draw(transfers(max_size=max_size, accounts=FLOW_ACCOUNTS, min_size=6))
    i = 0
    chain: tuple[str, str, str] | None = None
    while i + 1 < len(evs) and draw(st.sampled_from([True, True, True, True, False])):
        first, second = evs[i], evs[i + 1]
        # Simplest draws first (hypothesis favours them): a valid middle, then ones that break it.
        fresh = (
            draw(st.sampled_from(["a", "a", "b"])),
            draw(st.sampled_from(["c", "f", "g", "c", "f", "b", "e"])),
            draw(st.sampled_from(["e", "e", "d"])),
        )
        shape = draw(st.sampled_from(["same ends", "same middle", "new"]))
        if chain is not None and shape == "same ends":
            chain = (chain[0], fresh[1], chain[2])
        elif chain is not None and shape == "same middle":
            chain = (fresh[0], chain[1], fresh[2])
        else:
            chain = fresh
        first["actor"], first["counterparty"] = chain[0], chain[1]
        second["actor"], second["counterparty"] = chain[1], chain[2]
        first["kind"] = second["kind"] = "transfer"
        first["amount"] = draw(st.sampled_from([*_VALID, *AMOUNTS]))
        first["ts"] = BASE + timedelta(hours=draw(st.integers(min_value=0, max_value=2)))
        second["ts"] = first["ts"] + timedelta(hours=draw(st.integers(min_value=0, max_value=2)))
        if draw(st.booleans()):  # the amount passed on unchanged, as a tolerance would want
            second["amount"] = first["amount"]
        i += 2
    return evs
