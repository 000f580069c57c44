"""flagstone triage: train on labelled history, score, and activate as a supervisor, end to end on
a generated demo (its labels.csv), on SQLite and PostgreSQL case databases."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pytest
from oversight_data import PASSWORD, Setup, build_scanned_store
from sqlalchemy import select
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.oversight.schema import audit_entries, case_alerts, cases
from flagstone.store import Store
from flagstone.triage.features import HISTORY_LENGTH, MODEL_FEATURES

pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Enough alerts that every time-ordered period of training holds both labels.
    return build_scanned_store(tmp_path_factory.mktemp("scanned"), events=400_000, seed=7)


def run(s: Setup, *args: str, stdin: str | None = None) -> tuple[int, str]:
    # Commands that audit without a --db option find the case database in $FLAGSTONE_DB.
    result = CliRunner().invoke(app, list(args), input=stdin, env={"FLAGSTONE_DB": s.ov.db_url})
    return result.exit_code, result.output


def actions(s: Setup) -> list[str]:
    with s.ov.engine.connect() as con:
        return list(con.execute(select(audit_entries.c.action).order_by(audit_entries.c.seq)).scalars())


def test_train_score_and_activate(setup: Setup, scanned: Path, tmp_path: Path) -> None:
    labels = scanned.parent / "data" / "labels.csv"
    store, db = str(setup.store), setup.ov.db_url
    model = tmp_path / "m1"

    code, output = run(setup, "triage", "train", "--labels", str(labels), "--out", str(model), "--store", store)
    assert code == 0, output
    card = json.loads((model / "card.json").read_text())
    version = card["model_version"]
    assert card["labels"]["positives"] > 0 and card["labels"]["negatives"] > 0
    # Counts that grow with the history a store holds are computed but are no model inputs.
    assert {f["name"] for f in card["features"]} == set(MODEL_FEATURES) and not set(MODEL_FEATURES) & HISTORY_LENGTH
    with Store(setup.store, read_only=True) as st:
        assert st.con.execute("SELECT model_id, active FROM triage_models").fetchall() == [(version, False)]
    assert "triage_model_trained" in actions(setup)

    code, output = run(setup, "triage", "evaluate", "--model", str(model), "--labels", str(labels), "--store", store)
    assert code == 0 and "read in priority order" in output and "precision in the top 10%" in output

    # Activation is a supervisor's: an analyst, or a wrong password, is refused and changes nothing.
    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "ana", "--password-stdin",
                       "--store", store, "--db", db, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 2 and "only a supervisor" in output
    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "sam", "--password-stdin",
                       "--store", store, "--db", db, stdin="wrong password\n")  # fmt: skip
    assert code == 2
    with setup.ov.engine.connect() as con:
        assert con.execute(select(cases.c.priority).where(cases.c.priority.is_not(None))).first() is None

    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "sam", "--password-stdin",
                       "--store", store, "--db", db, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, output
    assert f"model {version} active" in output
    with Store(setup.store, read_only=True) as st:
        n_alerts = st.con.execute("SELECT count(*) FROM alerts").fetchall()[0][0]
        assert st.con.execute("SELECT count(*) FROM alert_scores").fetchall()[0][0] == n_alerts
    with setup.ov.engine.connect() as con:
        scored = con.execute(select(cases.c.priority, cases.c.explanation, cases.c.triage_model)).all()
    assert scored and all(p is not None and 0 <= p <= 1 and e and m == version for p, e, m in scored)
    assert {"triage_model_activated", "alerts_scored"} <= set(actions(setup))

    code, output = run(setup, "alerts", "--store", store)
    exported = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert exported and all(0 <= a["priority"] <= 1 and a["explanation"] for a in exported)

    # The report shows the model card, drift since training and the top of the queue with reasons.
    report = tmp_path / "report.html"
    code, output = run(setup, "report", "--out", str(report), "--store", store)
    assert code == 0, output
    html = report.read_text()
    assert "Model card" in html and version in html and "Known limits" in html
    drift = html[html.index("Drift since training") : html.index("Top of the queue")]
    # The store's alerts are the ones trained on: every PSI is small (the same population).
    psis = [float(x) for x in re.findall(r"<td>(\d+\.\d{3})</td><td>", drift)]
    assert len(psis) >= 2 and all(v < 0.1 for v in psis), psis
    top = max(exported, key=lambda a: a["priority"])
    assert escape(top["explanation"]) in html
    # Later scans score their new alerts with the active model.
    rule = tmp_path / "big.yaml"
    rule.write_text("id: t.big\nversion: 1\ntitle: big\nseverity: low\nkind: condition\ncondition: amount > 5000\n")
    code, output = run(setup, "scan", "--rules", str(rule), "--store", store)
    assert code == 0, output
    assert "new alerts scored" in output
    with Store(setup.store, read_only=True) as st:
        unscored = st.con.execute(
            "SELECT count(*) FROM alerts a ANTI JOIN alert_scores s USING (alert_id) WHERE a.rule_id = 't.big'"
        ).fetchall()[0][0]
        new = st.con.execute("SELECT count(*) FROM alerts WHERE rule_id = 't.big'").fetchall()[0][0]
    assert new > 0 and unscored == 0
    assert actions(setup).count("alerts_scored") == 2


def decide(s: Setup, decisions: dict[str, str]) -> dict[str, str]:
    """Plant reviewers' decisions (alert id -> state) as the workflow leaves them, on the case that
    holds each alert; returns the state of every alert of the decided cases (a decision on a case
    covers all its scheme's alerts)."""
    with s.ov.engine.begin() as con:
        case_of = dict(con.execute(select(case_alerts.c.alert_id, case_alerts.c.case_id)).all())
        for alert_id, state in decisions.items():
            reason = "report filed" if state == "filed" else "ordinary business, documented"
            con.execute(
                cases.update().where(cases.c.id == case_of[alert_id]).values(state=state, closing_reason=reason)
            )
        state_of = dict(con.execute(select(cases.c.id, cases.c.state)).all())
    return {a: state_of[c] for a, c in case_of.items() if state_of[c] in ("filed", "dismissed")}


def test_train_from_reviewers_decisions(setup: Setup, scanned: Path, tmp_path: Path) -> None:
    from flagstone.evaluate import CURRENT_ALERTS_SQL, alert_truth, load_labels

    store, db = str(setup.store), setup.ov.db_url
    code, output = run(setup, "triage", "train", "--from-cases", "--out", str(tmp_path / "m0"), "--store", store,
                       "--db", db)  # fmt: skip
    assert code == 2 and "decisions of both kinds" in output  # every case is still open
    code, output = run(setup, "triage", "train", "--out", str(tmp_path / "m0"), "--store", store)
    assert code == 2 and "--labels FILE or --from-cases" in output

    # Reviewers read a biased share: every other alert in id order, as a queue would present them.
    with Store(setup.store, read_only=True) as st:
        truth = alert_truth(st.con, CURRENT_ALERTS_SQL, load_labels(scanned.parent / "data" / "labels.csv"))
    read = decide(setup, {a: "filed" if truth[a].true else "dismissed" for a in sorted(truth)[::2]})
    model = tmp_path / "m2"
    code, output = run(setup, "triage", "train", "--from-cases", "--out", str(model), "--store", store, "--db", db)
    assert code == 0, output
    card = json.loads((model / "card.json").read_text())
    labels = card["labels"]
    assert labels["source"].startswith("reviewers' decisions")
    assert labels["positives"] == sum(state == "filed" for state in read.values())
    assert labels["negatives"] == sum(state == "dismissed" for state in read.values())
    assert labels["decided"] == len(read) and labels["undecided_unlabelled"] == len(truth) - len(read)
    assert labels["dismissal_reasons"] == {"ordinary business, documented": labels["negatives"]}
    assert card["validation"]["weighted"] is True
    assert "triage_model_trained" in actions(setup)
    # The decided cases were copied into the store for the case features: one row per account.
    from flagstone.triage.features import feature_table

    with Store(setup.store, read_only=True) as st:
        outcomes = st.con.execute("SELECT outcome, count(*) FROM case_outcomes GROUP BY ALL").fetchall()
        prior = feature_table(st.con).column("prior_dismissed_cases").to_pylist()
    with setup.ov.engine.connect() as con:
        dismissed_cases = len(con.execute(select(cases.c.id).where(cases.c.state == "dismissed")).all())
    assert dict(outcomes).get("dismissed", 0) >= dismissed_cases > 0
    assert any(v is not None for v in prior)


def test_review_sample_marks_a_share_of_cases_first_in_the_queue(setup: Setup, scanned: Path, tmp_path: Path) -> None:
    from flagstone.oversight.cases import queue
    from flagstone.triage.registry import review_sampled

    labels = scanned.parent / "data" / "labels.csv"
    store, db = str(setup.store), setup.ov.db_url
    model = tmp_path / "m1"
    assert run(setup, "triage", "train", "--labels", str(labels), "--out", str(model), "--store", store)[0] == 0
    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "sam", "--password-stdin",
                       "--review-sample", "0.7", "--store", store, "--db", db, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 2 and "review sample" in output  # over 0.5: refused before any password is read
    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "sam", "--password-stdin",
                       "--review-sample", "0.25", "--store", store, "--db", db, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, output
    version = json.loads((model / "card.json").read_text())["model_version"]
    with setup.ov.engine.connect() as con:
        rows = con.execute(select(cases.c.alert_id, cases.c.review_sample, cases.c.priority)).all()
    sampled = {a for a, r, _ in rows if r}
    # The draw is the documented hash, independent of priority, and near its share.
    assert sampled == {a for a, _, _ in rows if review_sampled(version, a, 0.25)}
    assert 0.15 < len(sampled) / len(rows) < 0.35
    shown = queue(setup.ov, setup.users["sam"], state="", sort="priority", limit=len(rows))
    flags = [c.review_sample for c in shown]
    assert flags == sorted(flags, reverse=True)  # the sample first
    first = [c.priority for c in shown if c.review_sample]
    assert first == sorted(first, reverse=True)  # each part in priority order
    exported = [json.loads(x) for x in run(setup, "alerts", "--store", store)[1].splitlines() if x.startswith("{")]
    assert {a["alert_id"] for a in exported if a["review_sample"]} == sampled


def test_train_a_detector_and_scan_with_a_model_rule(setup: Setup, scanned: Path, tmp_path: Path) -> None:
    labels = scanned.parent / "data" / "labels.csv"
    store, db = str(setup.store), setup.ov.db_url
    model = tmp_path / "d1"
    code, output = run(setup, "triage", "train-detector", "--labels", str(labels), "--out", str(model),
                       "--window", "7d", "--store", store)  # fmt: skip
    assert code == 0, output
    card = json.loads((model / "card.json").read_text())
    assert card["labels"]["detector"]["window"] == "7d" and card["labels"]["positives"] > 0
    code, output = run(setup, "triage", "train-detector", "--labels", str(labels), "--out", str(tmp_path / "x"),
                       "--window", "7 days", "--store", store)  # fmt: skip
    assert code == 2 and "--window" in output
    code, output = run(setup, "triage", "train-detector", "--labels", str(labels), "--out", str(tmp_path / "x"),
                       "--window", "99999999d", "--store", store)  # fmt: skip
    assert code == 2 and "at most 3650d" in output
    # A detector orders no queue: activating it is refused before any password is asked.
    code, output = run(setup, "triage", "activate", str(model), "--supervisor", "sam", "--password-stdin",
                       "--store", store, "--db", db, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 2 and "detector model" in output

    # The threshold: the 20th highest priority; the scan must raise exactly the windows at or above it.
    from flagstone.rules.kinds.model import feature_rows
    from flagstone.triage.detector import candidate_table
    from flagstone.triage.model import TriageModel

    with Store(setup.store, read_only=True) as st:
        priorities = sorted(
            TriageModel.load(model).score(feature_rows(candidate_table(st.con, 7 * 86_400_000_000))).priority
        )
    threshold = float(priorities[-20])
    expected = sum(p >= threshold for p in priorities)
    rule = tmp_path / "detector.yaml"
    rule.write_text(
        "id: t.detector\nversion: 1\ntitle: accounts the detector scores high\nseverity: medium\nkind: model\n"
        f"model: {model.name}\nthreshold: {threshold!r}\nreason: 'priority {{priority}}. {{explanation}}'\n"
    )
    code, output = run(setup, "scan", "--rules", str(rule), "--store", store)
    assert code == 0, output
    with Store(setup.store, read_only=True) as st:
        found = st.con.execute("SELECT group_key, \"values\" FROM alerts WHERE rule_id = 't.detector'").fetchall()
    assert len(found) == expected >= 20
    for group, values in found:
        v = json.loads(values)
        assert group.startswith("account=") and v["priority"] >= threshold - 1e-6 and v["explanation"]
