"""Rules score what they target (their own id and the typologies they declare); a typology is
scored for the union of its rules. A plain-Python scorer is the oracle on random alerts and labels."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstone._yaml import load_text
from flagstone.errors import RuleError
from flagstone.evaluate import load_labels, score_alerts, typology_recall
from flagstone.rules.loader import parse_rule
from flagstone.schemes import link_alerts

RULES = ("r1", "r2", "r3")
TYPOLOGIES = ("fan_in", "cycle", "stack")
EVENTS = [f"e{i}" for i in range(12)]

alerts_st = st.lists(
    st.tuples(st.sampled_from(RULES), st.lists(st.sampled_from(EVENTS), min_size=1, max_size=5, unique=True)),
    max_size=10,
)
# Units (patterns or scenarios) with disjoint records: unit k owns the events it is given first.
units_st = st.lists(
    st.tuples(st.sampled_from(TYPOLOGIES), st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4, unique=True)),
    min_size=1,
    max_size=5,
)
targets_st = st.fixed_dictionaries({r: st.lists(st.sampled_from(TYPOLOGIES), unique=True, max_size=2) for r in RULES})


def disjoint(units: list[tuple[str, list[str]]]) -> list[tuple[str, str, list[str]]]:
    taken: set[str] = set()
    out = []
    for k, (typology, events) in enumerate(units):
        mine = [e for e in events if e not in taken]
        taken.update(mine)
        if mine:
            out.append((f"u{k}", typology, mine))
    return out


def con_with(alerts: list[tuple[str, list[str]]]) -> tuple[duckdb.DuckDBPyConnection, str]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE a (alert_id VARCHAR, rule_id VARCHAR, fire_source VARCHAR, fire_event_id VARCHAR, "
        "evidence_sources VARCHAR[], evidence VARCHAR[])"
    )
    for k, (rule, evs) in enumerate(alerts):
        con.execute("INSERT INTO a VALUES (?, ?, 'bank', ?, ?, ?)", [f"a{k}", rule, evs[-1], ["bank"] * len(evs), evs])
    return con, "SELECT * FROM a"


def oracle(
    alerts: list[tuple[str, list[str]]],
    units: list[tuple[str, str, list[str]]],
    targets: Mapping[str, list[str]],
    per_pattern: bool,
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, int, int]]]:
    def detects(evs: list[str], records: list[str]) -> bool:
        held = len(set(evs) & set(records))
        return 2 * held >= len(records) if per_pattern else held > 0

    rules: dict[str, tuple[int, ...]] = {}
    for r in RULES:
        mine = [a for a in alerts if a[0] == r]
        own = [u for u in units if u[1] in targets[r]]
        detected = sum(any(detects(evs, u[2]) for _, evs in mine) for u in own)
        true_own = sum(any(set(evs) & set(u[2]) for u in own) for _, evs in mine)
        true_any = sum(any(set(evs) & set(u[2]) for u in units) for _, evs in mine)
        if mine or own:
            rules[r] = (len(own), detected, len(mine), true_own, true_any)
    typ: dict[str, tuple[int, int, int]] = {}
    for t in {u[1] for u in units}:
        of_t = [u for u in units if u[1] == t]
        own_alerts = [evs for r, evs in alerts if t in targets[r]]
        typ[t] = (
            len(of_t),
            sum(any(detects(evs, u[2]) for evs in own_alerts) for u in of_t),
            sum(any(detects(evs, u[2]) for _, evs in alerts) for u in of_t),
        )
    return rules, typ


def write_labels(path: Path, units: list[tuple[str, str, list[str]]], per_pattern: bool) -> Path:
    if per_pattern:
        lines = ["pattern_id,typology,source,event_id"] + [f"{u},{t},bank,{e}" for u, t, es in units for e in es]
    else:
        lines = ["scenario_id,typology,label,source,event_id"] + [
            f"{u},{t},suspicious,bank,{e}" for u, t, es in units for e in es
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(alerts_st, units_st, targets_st, st.booleans())
def test_scores_equal_the_oracle(
    tmp_path: Path, alerts: Any, raw_units: Any, targets: dict[str, list[str]], per_pattern: bool
) -> None:
    units = disjoint(raw_units)
    labels = load_labels(write_labels(tmp_path / "labels.csv", units, per_pattern))
    assert labels.names == "typology" and labels.format == ("pattern" if per_pattern else "scenario")
    con, sql = con_with(alerts)
    want_rules, want_typ = oracle(alerts, units, targets, per_pattern)
    got = {
        s.rule_id: (s.scenarios, s.detected, s.alerts, s.true_alerts, s.true_any)
        for s in score_alerts(con, sql, labels, targets=targets)
    }
    # Without rule ids: the rules with alerts, and those that target a labelled typology.
    assert got == want_rules
    got_typ = {t.typology: (t.patterns, t.own, t.any_rule) for t in typology_recall(con, sql, labels, RULES, targets)}
    assert got_typ == want_typ
    # Per case: the alerts of one scheme (schemes.link_alerts, tested on its own) together.
    schemes = link_alerts(con, sql)
    union: dict[str, set[str]] = {}
    for k, (_, evs) in enumerate(alerts):
        union.setdefault(schemes[f"a{k}"], set()).update(evs)
    per_case = {
        t: sum(
            any((2 * len(set(u[2]) & c) >= len(u[2])) if per_pattern else bool(set(u[2]) & c) for c in union.values())
            for u in units
            if u[1] == t
        )
        for t in want_typ
    }
    assert {t.typology: t.by_case for t in typology_recall(con, sql, labels, RULES, targets)} == per_case


def test_a_typology_of_two_rules_is_scored_as_their_union(tmp_path: Path) -> None:
    # r1 finds one cycle, r2 the other: each rule alone has recall 0.5, the typology 1.0.
    units = [("c1", "cycle", ["e1", "e2"]), ("c2", "cycle", ["e3", "e4"])]
    labels = load_labels(write_labels(tmp_path / "p.csv", units, per_pattern=True))
    con, sql = con_with([("r1", ["e1", "e2"]), ("r2", ["e3", "e4", "e9"])])
    targets = {"r1": ["cycle"], "r2": ["cycle"]}
    scores = {s.rule_id: s for s in score_alerts(con, sql, labels, targets=targets)}
    assert scores["r1"].recall == 0.5 and scores["r2"].recall == 0.5
    (cycle,) = typology_recall(con, sql, labels, ["r1", "r2"], targets)
    assert (cycle.patterns, cycle.own, cycle.any_rule, cycle.rules) == (2, 2, 2, ("r1", "r2"))


def test_a_pattern_split_over_two_alerts_of_one_case_is_found_per_case(tmp_path: Path) -> None:
    # Four transfers; each alert holds one, with the same two others: no alert holds half, the
    # case (their union, as the alerts share most events) does.
    units = [("p1", "stack", ["e1", "e2", "e3", "e4"])]
    labels = load_labels(write_labels(tmp_path / "p.csv", units, per_pattern=True))
    con, sql = con_with([("r1", ["e1", "e8", "e9"]), ("r2", ["e2", "e8", "e9"])])
    (stack,) = typology_recall(con, sql, labels, ["r1", "r2"], {})
    assert (stack.any_rule, stack.by_case) == (0, 1)


RULE = """id: t.r
version: 1
title: t
severity: low
kind: condition
condition: amount > 1
"""


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("typology: structuring", ("structuring",)),
        ("typology: [fan_in, fan_out, fan_in]", ("fan_in", "fan_out")),
        ("", ()),
    ],
)
def test_typology_metadata(line: str, want: tuple[str, ...]) -> None:
    rule = parse_rule(load_text(RULE + line + "\n", "r.yaml", RuleError))
    assert rule.meta.typologies == want and rule.meta.targets == ("t.r", *want)


@pytest.mark.parametrize("line", ["typology: []", "typology: 'Bad Name'", "typology: [1]", "typology: {a: 1}"])
def test_bad_typology_is_refused_naming_the_field(line: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(load_text(RULE + line + "\n", "r.yaml", RuleError))
    assert info.value.field == "typology"


def test_a_scan_records_the_typologies_evaluate_reads(tmp_path: Path) -> None:
    from flagstone.evaluate import stored_targets
    from flagstone.rules import load_rules
    from flagstone.scan import scan_store
    from flagstone.store import Store

    path = tmp_path / "r.yaml"
    path.write_text(RULE + "typology: [structuring]\n")
    with Store(tmp_path / "s.duckdb") as st:
        scan_store(st, load_rules([path]), progress=False)
        assert stored_targets(st.con) == {"t.r": ("structuring",)}
        path.write_text(RULE.replace("version: 1", "version: 2") + "typology: smurfing\n")
        scan_store(st, load_rules([path]), progress=False)
        assert stored_targets(st.con) == {"t.r": ("smurfing",)}  # the latest scan's declaration
        assert json.loads(st.scalar("SELECT rules FROM scans ORDER BY scan_id LIMIT 1"))[0]["typologies"] == [
            "structuring"
        ]


def test_evaluate_reads_targets_from_rule_files_when_given(tmp_path: Path) -> None:
    # A store scanned before its rule declared a typology: `--rules` supplies the declaration.
    from typer.testing import CliRunner

    from flagstone.cli import app
    from flagstone.store import Store

    with Store(tmp_path / "s.duckdb") as st:
        st.con.execute(
            "INSERT INTO alerts VALUES ('a1', 1, 't.r', 1, 'low', 'actor=x', TIMESTAMP '2025-01-01', "
            "TIMESTAMP '2025-01-01', 'bank', 'e1', ['bank'], ['e1'], '{}', 'r')"
        )
    labels = write_labels(tmp_path / "p.csv", [("p1", "structuring", ["e1"])], per_pattern=True)
    rule = tmp_path / "r.yaml"
    rule.write_text(RULE + "typology: structuring\n")
    runner = CliRunner()
    plain = runner.invoke(app, ["evaluate", "--store", str(tmp_path / "s.duckdb"), "--labels", str(labels)])
    told = runner.invoke(
        app, ["evaluate", "--store", str(tmp_path / "s.duckdb"), "--labels", str(labels), "-r", str(rule)]
    )
    assert plain.exit_code == 0 and told.exit_code == 0, (plain.output, told.output)
    row = lambda out: next(line.split() for line in out.splitlines() if line.strip().startswith("t.r"))  # noqa: E731
    assert row(plain.output)[1:] == ["0", "0", "–", "1", "–", "1.00"]  # targets nothing labelled
    assert row(told.output)[1:] == ["1", "1", "1.00", "1", "1.00", "1.00"]
