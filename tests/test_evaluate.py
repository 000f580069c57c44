"""Precision and recall on hand-made alerts whose right answers are known."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from flagstone.errors import InputError
from flagstone.evaluate import (
    CURRENT_ALERTS_SQL,
    RuleScore,
    alert_truth,
    evaluate_store,
    load_labels,
    read_labels,
    render_scores,
)
from flagstone.store import Store

T0 = datetime(2025, 1, 10, 12, 0)


def add_alert(
    store: Store,
    alert_id: str,
    rule_id: str,
    evidence: list[tuple[str, str]],
    *,
    scan_id: int = 1,
    version: int = 1,
    severity: str = "high",
    reason: str = "why",
    group_key: str = "actor=p1",
) -> None:
    fire = evidence[-1]
    store.con.execute(
        "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert_id,
            scan_id,
            rule_id,
            version,
            severity,
            group_key,
            T0,
            T0,
            fire[0],
            fire[1],
            [s for s, _ in evidence],
            [e for _, e in evidence],
            json.dumps({"n": len(evidence)}),
            reason,
        ],
    )


LABELS = """scenario_id,rule_id,label,source,event_id
A/s1,rule.a,suspicious,bank,b1
A/s1,rule.a,suspicious,bank,b2
A/s2,rule.a,suspicious,bank,b3
A/s3,rule.a,suspicious,shop,s1
A/s4,rule.a,suspicious,shop,s2
A/d1,rule.a,decoy,bank,b9
A/d2,rule.a,decoy,bank,b10
B/s1,rule.b,suspicious,transit,t1
B/d1,rule.b,decoy,transit,t9
"""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store(tmp_path / "s.duckdb")
    yield st
    st.close()


def write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def by_rule(scores: list[RuleScore]) -> dict[str, RuleScore]:
    return {s.rule_id: s for s in scores}


def test_known_precision_and_recall(store: Store, tmp_path: Path) -> None:
    add_alert(store, "a1", "rule.a", [("bank", "b1"), ("bank", "x7")])  # covers A/s1
    add_alert(store, "a2", "rule.a", [("bank", "b2"), ("bank", "b3")])  # covers A/s1 and A/s2
    add_alert(store, "a3", "rule.a", [("bank", "x1"), ("bank", "x2")])  # background: false positive
    add_alert(store, "a4", "rule.a", [("bank", "b9")])  # fires on a decoy
    add_alert(store, "a5", "rule.a", [("shop", "b3")])  # same event id, other source: no match
    add_alert(store, "c1", "rule.c", [("transit", "t1")])  # unlabelled rule hits B's scenario
    add_alert(store, "c2", "rule.c", [("transit", "zz")])

    scores = by_rule(evaluate_store(store, write(tmp_path, LABELS)))

    assert list(scores) == ["rule.a", "rule.b", "rule.c"]
    a = scores["rule.a"]
    assert (a.scenarios, a.detected, a.alerts, a.true_alerts, a.decoys, a.decoys_fired) == (4, 2, 5, 2, 2, 1)
    assert a.recall == pytest.approx(0.5)
    assert a.precision == pytest.approx(0.4)
    b = scores["rule.b"]
    assert (b.scenarios, b.detected, b.alerts, b.decoys, b.decoys_fired) == (1, 0, 0, 1, 0)
    assert b.recall == 0 and b.precision is None
    # Alerts but no labels of its own: counted; its hit on B's scenario is true for any rule, not
    # for rule.c, which targets nothing labelled (so its own precision is unknown).
    c = scores["rule.c"]
    assert (c.scenarios, c.alerts, c.true_alerts, c.true_any) == (0, 2, 0, 1)
    assert c.recall is None and c.precision is None and c.precision_any == pytest.approx(0.5)
    assert a.precision_any == pytest.approx(0.4)  # every true alert of rule.a hits its own scenarios


def test_alerts_of_all_scans_count_but_only_the_latest_rule_version(store: Store, tmp_path: Path) -> None:
    add_alert(store, "old1", "rule.a", [("bank", "b1")], scan_id=1)  # found again later: kept from scan 1
    add_alert(store, "new1", "rule.a", [("bank", "x1")], scan_id=2)
    add_alert(store, "v1", "rule.b", [("transit", "t1")], scan_id=1, version=1)
    add_alert(store, "v2", "rule.b", [("transit", "zz")], scan_id=2, version=2)
    scores = by_rule(evaluate_store(store, write(tmp_path, LABELS)))
    assert (scores["rule.a"].alerts, scores["rule.a"].true_alerts, scores["rule.a"].detected) == (2, 1, 1)
    assert (scores["rule.b"].alerts, scores["rule.b"].detected) == (1, 0)  # version 1's hit no longer counts


def test_fire_event_counts_as_evidence(store: Store, tmp_path: Path) -> None:
    store.con.execute(
        "INSERT INTO alerts VALUES ('f1', 1, 'rule.a', 1, 'high', 'g', ?, ?, 'shop', 's2', [], [], '{}', 'r')",
        [T0, T0],
    )
    assert by_rule(evaluate_store(store, write(tmp_path, LABELS)))["rule.a"].detected == 1


def test_read_only_store_works(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    with Store(path) as st:
        add_alert(st, "a1", "rule.a", [("bank", "b1")])
    with Store(path, read_only=True) as ro:
        assert by_rule(evaluate_store(ro, write(tmp_path, LABELS)))["rule.a"].detected == 1


def test_render_scores_shows_every_rule() -> None:
    scores = [RuleScore("rule.a", 4, 2, 5, 2, 2, 1), RuleScore("rule.c", 0, 0, 0, 0, 0, 0)]
    # As the CLI prints: its console reads no markup, so styles must not come as markup text.
    console = Console(record=True, width=160, markup=False)
    console.print(render_scores(scores))
    text = console.export_text()
    assert "rule.a" in text and "0.50" in text and "0.40" in text and "1/2" in text
    assert "rule.c" in text and "–" in text
    assert "[" not in text


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("scenario_id,rule_id,label,source\nx,r,decoy,bank\n", 1, "event_id"),
        ("scenario_id,rule_id,label,source,event_id\nx,r,decoy,bank,e1\ny,r,maybe,bank,e2\n", 3, "label"),
        ("scenario_id,rule_id,label,source,event_id\nx,r,decoy,bank,\n", 2, "event_id"),
        (
            "scenario_id,rule_id,label,source,event_id\nx,r,decoy,bank,e1\nx,r,suspicious,bank,e2\n",
            3,
            "label",
        ),
    ],
)
def test_label_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_labels(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert str(path) in str(err) and f":{line}" in str(err) and field in str(err)


def test_missing_and_empty_labels_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_labels(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="empty file"):
        read_labels(write(tmp_path, ""))


PATTERNS = """pattern_id,typology,source,event_id
p1,fan_in,bank,b1
p1,fan_in,bank,b2
p1,fan_in,bank,b3
p1,fan_in,bank,b4
p2,cycle,bank,c1
p2,cycle,bank,c2
"""


def test_alert_truth_per_scenario_is_score_alerts_per_alert(store: Store, tmp_path: Path) -> None:
    add_alert(store, "a1", "rule.a", [("bank", "b1"), ("bank", "x7")])  # suspicious record: true
    add_alert(store, "a3", "rule.a", [("bank", "x1"), ("bank", "x2")])  # background: false
    add_alert(store, "a4", "rule.a", [("bank", "b9")])  # a decoy: false
    add_alert(store, "a5", "rule.a", [("shop", "b3")])  # other source: false
    add_alert(store, "c1", "rule.c", [("transit", "t1")])  # another rule's scenario: still true
    truth = alert_truth(store.con, CURRENT_ALERTS_SQL, load_labels(write(tmp_path, LABELS)))
    assert {a: t.true for a, t in truth.items()} == {"a1": True, "a3": False, "a4": False, "a5": False, "c1": True}
    assert all(t.found == frozenset() for t in truth.values())
    # The same count as the rule scores give.
    true_alerts = sum(s.true_any for s in evaluate_store(store, write(tmp_path, LABELS)))
    assert true_alerts == sum(t.true for t in truth.values())


def test_alert_truth_per_pattern_finds_a_pattern_only_with_half_its_records(store: Store, tmp_path: Path) -> None:
    add_alert(store, "h1", "rule.a", [("bank", "b1")])  # 1 of 4: true, finds nothing
    add_alert(store, "h2", "rule.a", [("bank", "b1"), ("bank", "b2")])  # 2 of 4: finds p1
    add_alert(store, "h3", "rule.b", [("bank", "b3"), ("bank", "c1"), ("bank", "c2")])  # p2 whole, p1 1/4
    add_alert(store, "h4", "rule.b", [("bank", "zz")])
    truth = alert_truth(store.con, CURRENT_ALERTS_SQL, load_labels(write(tmp_path, PATTERNS)))
    assert {a: (t.true, sorted(t.found)) for a, t in truth.items()} == {
        "h1": (True, []),
        "h2": (True, ["p1"]),
        "h3": (True, ["p2"]),
        "h4": (False, []),
    }
