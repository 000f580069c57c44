"""Backtests: figures known by construction, sweeps, per-pattern labels, nothing stored, offline HTML."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from browser import require_chromium
from conftest import REPO
from test_report import CHROMIUM_FLAGS, EXTERNAL
from typer.testing import CliRunner

from flagstone.backtest import BacktestResult, parse_sweep, run_backtest
from flagstone.cli import app
from flagstone.demo import DemoResult, run_demo
from flagstone.errors import InputError
from flagstone.evaluate import TypologyRecall, evaluate_store, load_labels
from flagstone.generate import RULE_IDS
from flagstone.report import write_backtest_report, write_report
from flagstone.rules import load_rules
from flagstone.store import Store

AML = REPO / "packs" / "aml"
STRUCTURING = "aml.structuring"


def alert_rows(store: Store) -> list[tuple[object, ...]]:
    return store.con.execute("SELECT * FROM alerts ORDER BY alert_id").fetchall()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    # Seed 3 plants two structuring cases of exactly three deposits and one of six.
    return run_demo(tmp_path_factory.mktemp("bt") / "out", events=50_000, seed=3, progress=False)


@pytest.fixture(scope="module")
def swept(demo: DemoResult) -> BacktestResult:
    with Store(demo.store, read_only=True) as st:
        return run_backtest(st, [AML], demo.data_dir / "labels.csv", sweeps=[f"{STRUCTURING}.min_deposits=2:4:1"])


def structuring_scenarios(demo: DemoResult) -> tuple[Counter[str], int]:
    """Deposits per suspicious structuring scenario, and how many decoys, read from the labels."""
    deposits: Counter[str] = Counter()
    decoys = set()
    with (demo.data_dir / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["rule_id"] == STRUCTURING:
                if row["label"] == "suspicious":
                    deposits[row["scenario_id"]] += 1
                else:
                    decoys.add(row["scenario_id"])
    return deposits, len(decoys)


def test_configured_rules_match_evaluate_of_the_scanned_store(demo: DemoResult, swept: BacktestResult) -> None:
    # The demo scanned the same packs into the store: replaying them must give the same figures.
    with Store(demo.store, read_only=True) as st:
        stored = {s.rule_id: s for s in evaluate_store(st, demo.data_dir / "labels.csv")}
        events = st.scalar("SELECT count(*) FROM events")
    assert [r.rule_id for r in swept.rules] == [r.meta.id for r in load_rules([AML])]
    assert {STRUCTURING, "aml.cash_velocity"} <= stored.keys()
    for row in swept.rules:
        if row.rule_id in stored:
            assert row.score == stored[row.rule_id]
        if row.rule_id in RULE_IDS:  # the rules the generator plants scenarios for
            assert row.score.recall == 1.0 and row.score.decoys_fired == 0
        assert row.per_1000 == pytest.approx(1000 * row.score.alerts / swept.events)
    assert swept.events == events


def test_sweep_directions_follow_from_the_planted_scenarios(demo: DemoResult, swept: BacktestResult) -> None:
    deposits, decoys = structuring_scenarios(demo)
    assert Counter(deposits.values())[3] >= 1, "the seed must plant a case of exactly three deposits"
    assert decoys >= 2  # a two-deposit decoy and a spread-out one
    (sweep,) = swept.sweeps
    assert swept.typologies == []  # a per-pattern view only
    assert (sweep.rule_id, sweep.param, sweep.configured) == (STRUCTURING, "min_deposits", 3)
    at = {row.value: row for row in sweep.rows}
    assert list(at) == [2, 3, 4] and all(type(v) is int for v in at)
    baseline = next(r for r in swept.rules if r.rule_id == STRUCTURING)
    assert at[3].score == baseline.score

    # 2 deposits: every decoy planted for this seed has at least two in-band deposits in 7 days.
    two, three, four = at[2].score, at[3].score, at[4].score
    assert (two.detected, two.scenarios) == (len(deposits), len(deposits))
    assert two.decoys_fired == two.decoys == decoys
    assert at[2].false_alerts >= at[3].false_alerts + decoys
    assert two.precision is not None and three.precision is not None and two.precision < three.precision
    # 3 deposits (configured): everything found, no decoy.
    assert (three.detected, three.decoys_fired) == (len(deposits), 0)
    # 4 deposits: exactly the cases of four or more remain.
    assert four.detected == sum(n >= 4 for n in deposits.values())
    assert four.recall == pytest.approx(four.detected / len(deposits)) and four.recall < 1
    assert at[4].missed == sum(n == 3 for n in deposits.values())
    assert four.decoys_fired == 0 and four.alerts <= three.alerts


def test_backtest_stores_nothing(demo: DemoResult, tmp_path: Path) -> None:
    with Store(demo.store, read_only=True) as st:
        before = alert_rows(st)
        scans = st.scalar("SELECT count(*) FROM scans")
    assert before  # the demo's scan stored alerts: they must come through untouched
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--store",
            str(demo.store),
            "-r",
            str(AML),
            "--labels",
            str(demo.data_dir / "labels.csv"),
            "--sweep",
            f"{STRUCTURING}.min_deposits=2:4:1",
            "--out",
            str(tmp_path / "bt.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "aml.structuring" in result.output and "per 1k" in result.output
    # Also when the store is open for writing: the function itself never writes.
    with Store(demo.store) as st:
        run_backtest(st, [AML], demo.data_dir / "labels.csv", sweeps=[f"{STRUCTURING}.band=0.05:0.15:0.05"])
        assert alert_rows(st) == before
        assert st.scalar("SELECT count(*) FROM scans") == scans


def test_html_is_offline_and_carries_the_sweep(swept: BacktestResult, tmp_path: Path) -> None:
    html = write_backtest_report(swept, tmp_path / "sub" / "bt.html").read_text(encoding="utf-8")
    assert EXTERNAL.search(html) is None
    assert html.count("plotly.js v") == 1
    block = re.search(r"<script type='application/json' id='fs-figures'>(.*?)</script>", html, re.S)
    assert block and "<" not in block.group(1)
    figs = json.loads(block.group(1))
    assert len(figs) == 2  # above/below the line, precision/recall
    rows = swept.sweeps[0].rows
    traces = {t["name"]: t for f in figs.values() for t in f["data"]}
    assert traces["true alerts"]["x"] == [2.0, 3.0, 4.0]
    assert traces["true alerts"]["y"] == [r.score.true_alerts for r in rows]
    assert traces["false alerts"]["y"] == [r.false_alerts for r in rows]
    assert traces["missed scenarios"]["y"] == [r.missed for r in rows]  # drawn downwards, below the line
    assert traces["recall"]["y"] == pytest.approx([r.score.recall for r in rows])
    assert "3 (configured)" in html and "per 1,000 events" in html


def test_html_draws_offline_in_chromium(swept: BacktestResult, tmp_path: Path) -> None:
    chromium = require_chromium()
    path = write_backtest_report(swept, tmp_path / "bt.html").resolve()
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", path.as_uri() + "#all"], capture_output=True, text=True, timeout=120)
    assert dom.stdout.count('data-drawn="1"') == 2, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 2


def test_sweep_values() -> None:
    assert parse_sweep("aml.structuring.min_deposits=2:4:1").values == (2, 3, 4)
    assert all(type(v) is int for v in parse_sweep("r.p=2:8:3").values)
    spec = parse_sweep("aml.structuring.band = 0.05:0.2:0.05")
    assert (spec.rule_id, spec.param) == ("aml.structuring", "band")
    assert spec.values == (Decimal("0.05"), Decimal("0.10"), Decimal("0.15"), Decimal("0.20"))
    assert spec.override(spec.values[1]) == "aml.structuring.band=0.10"
    assert parse_sweep("r.p=5:5:1").values == (5,)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("aml.structuring.min_deposits=2:4", "three numbers"),
        ("min_deposits=2:4:1", "RULE_ID.PARAM=LO:HI:STEP"),
        ("aml.structuring.min_deposits=a:4:1", "must be numbers"),
        ("aml.structuring.min_deposits=4:2:1", "HI must not be below LO"),
        ("aml.structuring.min_deposits=2:4:0", "STEP must be above 0"),
        ("aml.structuring.min_deposits=1:100000:1", "at most"),
        ("aml.nope.min_deposits=2:4:1", "no rule 'aml.nope'"),
        ("aml.structuring.nope=2:4:1", "has no parameter 'nope'"),
        ("aml.structuring.window=1:2:1", "not a number"),
    ],
)
def test_bad_sweeps_are_clear_errors(pattern_store: Path, tmp_path: Path, spec: str, says: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--store",
            str(pattern_store),
            "-r",
            str(AML),
            "--labels",
            str(tmp_path / "none.csv"),
            "--sweep",
            spec,
            "--out",
            str(tmp_path / "bt.html"),
        ],
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--sweep" in text and says in text and spec.split("=")[0] in text
    assert not (tmp_path / "bt.html").exists()


# -- per-pattern labels on a hand-made store -----------------------------------------------------

T0 = datetime(2024, 3, 1, 9, 0)
PAIRS = """id: t.pairs
version: 1
title: two payments of 100 or more within an hour
severity: low
kind: window
typology: fan_in
params:
  min_amount: 100
match: amount >= $min_amount
window: 1h
aggregates:
  n: count(*)
having: n >= 2
"""
# Pattern P1 has four records, one alert holds two of them: half, so detected. Pattern P2 has
# three, one alert holds one of them (with a background record): a third, not detected, but a
# true alert. Actor c's alert holds no labelled record: a false alert.
EVENTS = [
    ("e1", "a", 0.0, "150"),
    ("e2", "a", 0.5, "150"),
    ("e3", "a", 10, "50"),
    ("e4", "a", 11, "50"),
    ("e5", "b", 0.0, "150"),
    ("e6", "b", 5.0, "150"),
    ("e7", "b", 20, "150"),
    ("x1", "b", 20.5, "150"),
    ("y1", "c", 30, "150"),
    ("y2", "c", 30.2, "150"),
]
PATTERNS = "pattern_id,typology,source,event_id\n" + "".join(
    f"{p},{t},bank,{e}\n"
    for p, t, es in (("P1", "fan_in", "e1 e2 e3 e4"), ("P2", "cycle", "e5 e6 e7"))
    for e in es.split()
)


@pytest.fixture
def pattern_store(tmp_path: Path) -> Path:
    path = tmp_path / "p.duckdb"
    with Store(path) as st:
        for event_id, actor, hours, amount in EVENTS:
            st.con.execute(
                "INSERT INTO events (event_id, source, ts, kind, actor, amount, currency, batch_id) "
                "VALUES (?, 'bank', ?, 'transfer', ?, ?, 'EUR', 1)",
                [event_id, T0 + timedelta(hours=hours), actor, Decimal(amount)],
            )
    return path


def test_per_pattern_labels(pattern_store: Path, tmp_path: Path) -> None:
    rule = tmp_path / "pairs.yaml"
    rule.write_text(PAIRS)
    labels = tmp_path / "patterns.csv"
    labels.write_text(PATTERNS)
    assert load_labels(labels).format == "pattern"
    with Store(pattern_store, read_only=True) as st:
        result = run_backtest(st, [rule], labels, sweeps=["t.pairs.min_amount=100:200:100"])
    (row,) = result.rules
    s = row.score
    # The rule targets fan_in: P1 is its own (found), P2 a cycle; the alert on P2 is true for any
    # rule but not for this one.
    assert (s.alerts, s.true_alerts, s.true_any, s.scenarios, s.detected) == (3, 1, 2, 1, 1)
    assert (s.precision, s.precision_any, s.recall) == (pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0)
    assert row.per_1000 == pytest.approx(300.0)  # 3 alerts over the 10 events the store holds
    assert [(r.value, r.score.alerts) for r in result.sweeps[0].rows] == [(100, 3), (200, 0)]
    assert result.typologies == [
        TypologyRecall("cycle", 1, {"t.pairs": 0}, 0, 0, (), 0),
        TypologyRecall("fan_in", 1, {"t.pairs": 1}, 1, 1, ("t.pairs",), 1),
    ]
    html = write_backtest_report(result, tmp_path / "bt.html").read_text(encoding="utf-8")
    assert "missed patterns" in html and "decoys fired" not in html and "Patterns detected by typology" in html

    # `flagstone evaluate` reads the same format, over alerts a scan stored.
    runner = CliRunner()
    assert runner.invoke(app, ["scan", "--store", str(pattern_store), "-r", str(rule)]).exit_code == 0
    shown = runner.invoke(app, ["evaluate", "--store", str(pattern_store), "--labels", str(labels)])
    assert shown.exit_code == 0, shown.output
    assert "patterns" in shown.output and "0.33" in shown.output and "0.67" in shown.output
    assert "detected by typology" in shown.output  # the labels name typologies
    with Store(pattern_store, read_only=True) as st:
        (stored,) = evaluate_store(st, labels)
        page = write_report(st, tmp_path / "report.html", labels=labels).read_text(encoding="utf-8")
    assert stored == s
    assert "Evaluation against labelled patterns" in page and "decoys fired" not in page


def test_pattern_label_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("pattern_id,typology,source,event_id\nP1,fan_in,bank,e1\nP1,cycle,bank,e2\n")
    with pytest.raises(InputError) as info:
        load_labels(bad)
    assert (info.value.line, info.value.field) == (3, "typology")
    bad.write_text("pattern_id,typology,event_id\nP1,fan_in,e1\n")
    with pytest.raises(InputError, match="missing column") as info:
        load_labels(bad)
    assert info.value.field == "source"
