"""Shared machinery for the oracle-equality tests of the sequence, deviation and dormancy kinds.

Events come from ``rule_strategies.events`` (coarse time grid, ties, exact window edges, NULLs);
some counterparties are set to the actor, so self-transfers occur.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
from conftest import load_duckdb
from hypothesis import strategies as st
from rule_strategies import events

from flagstone.engines import DuckDBEngine
from flagstone.rules import load_rules
from flagstone.rules.oracle import run_rule


@st.composite
def kind_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = draw(events(max_size=30))
    for e in out:
        if e["actor"] is not None and draw(st.integers(0, 5)) == 0:
            e["counterparty"] = e["actor"]  # a self-transfer
    return out


@st.composite
def ledger_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events between accounts that both pay and receive (the counterparties are also actors),
    some booked twice: a mirror of kind 'y' on the payee, with the same time, amount and currency
    and its own id (which may sort before or after the original's)."""
    out = draw(events(max_size=24))
    for e in out:
        e["counterparty"] = draw(st.sampled_from(["a", "b", "c", "k1", None]))
    mirrors = []
    for i, e in enumerate(out):
        if e["counterparty"] is not None and draw(st.integers(0, 2)) == 0:
            twin = f"{draw(st.integers(min_value=0, max_value=99)):02d}-m{i}"
            mirrors.append({**e, "event_id": twin, "kind": "y", "actor": e["counterparty"], "counterparty": e["actor"]})
    return out + mirrors


def rule_text(**body: Any) -> str:
    return json.dumps({"id": "t.random", "version": 1, "title": "random", "severity": "low", **body})


def check_equal(
    con: duckdb.DuckDBPyConnection, tmp: Path, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> int:
    """Run one rule on the oracle and on DuckDB; they must agree exactly. Returns the number found."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "rule.yaml"
    path.write_text(text)
    rule = load_rules([path]).rules[0]
    load_duckdb(con, evs, ents)
    expected = sorted(run_rule(rule, evs, ents), key=lambda f: (f.group, f.fire))
    got = sorted(DuckDBEngine(con).run(rule), key=lambda f: (f.group, f.fire))
    assert got == expected
    return len(expected)
