"""End to end on generated data: generate -> ingest -> scan -> evaluate -> report.

Every shipped rule must find every planted suspicious scenario (recall 1.0) and no rule may fire
on a near-miss decoy. A failure here is a finding about the generator or the engines: report it,
do not loosen it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flagstone.demo import DemoResult, find_packs, run_demo
from flagstone.generate import RULE_IDS
from flagstone.store import Store

ROOT = Path(__file__).resolve().parents[1]
# The generator's raw identifiers: IBANs, customer numbers, NFC card UIDs.
RAW_ID = r"^([A-Z]{2}\d{2}|C\d{10}$|04[0-9A-F]{12}$)"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo") / "out", events=50_000, seed=11, progress=False)


def test_every_rule_finds_every_scenario_and_no_decoy(demo: DemoResult) -> None:
    scores = {s.rule_id: s for s in demo.scores}
    assert set(RULE_IDS) <= set(scores)
    for rule_id in RULE_IDS:
        s = scores[rule_id]
        assert s.scenarios >= 3, rule_id
        assert s.recall == 1.0, f"{rule_id}: {s.detected} of {s.scenarios} scenarios detected"
        assert s.decoys_fired == 0, f"{rule_id}: {s.decoys_fired} of {s.decoys} decoys fired"


def test_no_alert_of_any_rule_touches_a_decoy(demo: DemoResult) -> None:
    with Store(demo.store, read_only=True) as st:
        row = st.con.execute(
            """WITH ev AS (SELECT rule_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id
                           FROM alerts)
               SELECT count(*), list(DISTINCT ev.rule_id || ' on ' || l.scenario_id)
               FROM ev JOIN read_csv(?, all_varchar = true) l USING (source, event_id)
               WHERE l.label = 'decoy'""",
            [str(demo.data_dir / "labels.csv")],
        ).fetchone()
    assert row is not None and row[0] == 0, row


def test_store_and_report_hold_pseudonyms_only(demo: DemoResult) -> None:
    with Store(demo.store, read_only=True) as st:
        raw = st.con.execute("SELECT count(*) FROM events WHERE regexp_matches(actor, ?)", [RAW_ID]).fetchone()
    assert raw == (0,)
    html = demo.report.read_text(encoding="utf-8")
    assert "Evaluation against labelled scenarios" in html
    assert re.search(r"\bDE\d{20}\b", html) is None  # no raw account number (IBAN) anywhere
    assert demo.alerts > 0


def test_find_packs_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_packs(ROOT) == ROOT / "packs"
    monkeypatch.chdir(tmp_path)
    assert find_packs() == ROOT / "packs"  # found next to the package in a source checkout


def test_main_prints_where_the_results_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flagstone.demo import main

    assert main(["--out", str(tmp_path / "d"), "--events", "20000", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "flagstone.duckdb" in printed and "flagstone alerts" in printed


def test_the_demos_files_are_its_owners_only(tmp_path: Path) -> None:
    """`make demo` runs this module, not the flagstone command, which sets the umask itself."""
    import os
    import stat

    from flagstone.demo import main

    before = os.umask(0o022)  # a usual login umask, whatever earlier tests left
    try:
        assert main(["--out", str(tmp_path / "d"), "--events", "20000", "--quiet"]) == 0
    finally:
        os.umask(before)
    made = [tmp_path / "d", *(tmp_path / "d").rglob("*")]
    loose = [f"{p}: {stat.S_IMODE(p.stat().st_mode):04o}" for p in made if p.stat().st_mode & 0o077]
    assert not loose


def test_the_demo_orders_its_queue_by_a_triage_model(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    from sqlalchemy import select

    from flagstone.oversight.context import Oversight
    from flagstone.oversight.schema import cases

    result = run_demo(tmp_path / "out", events=400_000, seed=3, progress=False)
    with Store(result.store, read_only=True) as st:
        [(model_id,)] = st.con.execute("SELECT model_id FROM triage_models WHERE active").fetchall()
    assert (tmp_path / "out" / "models" / "demo" / "card.json").is_file()
    ov = Oversight.open(result.store)
    try:
        with ov.engine.connect() as con:
            rows = con.execute(select(cases.c.priority, cases.c.explanation, cases.c.triage_model)).all()
    finally:
        ov.close()
    assert rows and all(p is not None and e and m == model_id for p, e, m in rows)
