"""Triage features (issue 15): DuckDB equals a plain-Python oracle on random events and alerts,
no feature sees past the alert's firing event, Spark gives the same table, and no feature reads a
protected attribute."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import triage_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstone.errors import RuleError
from flagstone.events import EVENT_COLUMNS
from flagstone.store import SCHEMA
from flagstone.triage.features import FEATURE_NAMES, FEATURES, GRAPH, Feature, check_protected, feature_table

BASE = datetime(2024, 3, 1)
ACCOUNTS = ["a", "b", "c", "d", "e"]
ALERT_COLUMNS = ["alert_id", "rule_id", "severity", "group_key", "last_ts", "fire_source", "fire_event_id",
                 "evidence_sources", "evidence"]  # fmt: skip


@st.composite
def events(draw: st.DrawFn, min_size: int = 1, max_size: int = 18) -> list[dict[str, Any]]:
    """Accounts are both actors and counterparties (so the graph has paths and cycles); times on a
    coarse grid with exact ties, ids from a small pool, so (ts, event_id, source) order matters."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for i in range(n):
        out.append(
            {
                "source": draw(st.sampled_from(["s1", "s2"])),
                "event_id": f"{draw(st.integers(0, 9))}-{i}",
                "ts": BASE + timedelta(days=draw(st.sampled_from([0, 0, 1, 3, 20, 40])), hours=draw(st.integers(0, 3))),
                "kind": draw(st.sampled_from(["transfer", "payment", "cash_deposit"])),
                "actor": draw(st.sampled_from([*ACCOUNTS, None])),
                "counterparty": draw(st.sampled_from([*ACCOUNTS, None])),
                "amount": draw(st.one_of(st.none(), st.integers(0, 5000).map(lambda c: Decimal(c) / 100))),
                "currency": "EUR",
                "channel": draw(st.sampled_from([None, "online", "CASH"])),
            }
        )
    return out


@st.composite
def alerts(draw: st.DrawFn, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts over ``evs``: a firing event, evidence around it (some after it, as episode rules
    have), and a group of one account, two, or none (grouped by another field)."""
    out = []
    for i in range(draw(st.integers(1, 5))):
        fire = draw(st.sampled_from(evs))
        picked = draw(st.lists(st.sampled_from(evs), max_size=5))
        evidence = sorted({(e["source"], e["event_id"]): e for e in [*picked, fire]}.values(), key=triage_oracle.key)
        x, y = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(ACCOUNTS))
        group = draw(
            st.sampled_from(
                [f"actor={x}", f"counterparty={x}", f"actor={x}, counterparty={y}", "place=v1", f"account={x}"]
            )
        )
        out.append(
            {
                "alert_id": f"al{i}",
                "rule_id": draw(st.sampled_from(["r1", "r2", "r3"])),
                "severity": draw(st.sampled_from(["low", "medium", "high", "critical"])),
                "group_key": group,
                "last_ts": fire["ts"],
                "fire_source": fire["source"],
                "fire_event_id": fire["event_id"],
                "evidence_sources": [e["source"] for e in evidence],
                "evidence": [e["event_id"] for e in evidence],
            }
        )
    return out


outcomes = st.lists(
    st.tuples(
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["filed", "approved", "dismissed", "open"]),
        st.sampled_from([BASE + timedelta(days=d) for d in (0, 1, 3, 20, 50)]),
    ),
    max_size=6,
)


def store_con(evs: list[dict[str, Any]], als: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(SCHEMA)
    load(con, evs, als)
    return con


def load(con: duckdb.DuckDBPyConnection, evs: list[dict[str, Any]], als: list[dict[str, Any]]) -> None:
    con.execute("DELETE FROM events")
    con.execute("DELETE FROM alerts")
    names = [c.name for c in EVENT_COLUMNS]
    if evs:
        con.executemany(
            f"INSERT INTO events ({', '.join(names)}, batch_id) VALUES ({', '.join('?' * len(names))}, 1)",
            [[e.get(n) for n in names] for e in evs],
        )
    for a in als:
        con.execute(
            "INSERT INTO alerts VALUES (?, 1, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, '{}', 'r')",
            [a["alert_id"], a["rule_id"], a["severity"], a["group_key"], a["last_ts"], a["last_ts"],
             a["fire_source"], a["fire_event_id"], a["evidence_sources"], a["evidence"]],
        )  # fmt: skip


def rows(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["alert_id"]: {n: r[n] for n in FEATURE_NAMES} for r in table.to_pylist()}


def same(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12)


def assert_equal(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert set(got) == set(want)
    for alert_id, feats in want.items():
        for name in FEATURE_NAMES:
            assert same(got[alert_id][name], feats[name]), (alert_id, name, got[alert_id][name], feats[name])


QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(st.data(), events(), st.sampled_from([1, 2, 100]))
def test_duckdb_equals_the_oracle(data: st.DataObject, evs: list[dict[str, Any]], hub: int) -> None:
    als = data.draw(alerts(evs))
    con = store_con(evs, als)
    table = feature_table(con, protected=[], hub_degree=hub)
    assert table.column_names == ["alert_id", "rule_id", "fire_ts", *FEATURE_NAMES]
    assert table.num_rows == len(als)
    # A store holds a case_outcomes table (empty here: no decided case, so the case features are 0);
    # without any outcomes table they are unknown (NULL).
    assert_equal(rows(table), triage_oracle.features(als, evs, [], hub_degree=hub))
    unknown = rows(feature_table(con, protected=[], hub_degree=hub, outcomes=None))
    assert_equal(unknown, triage_oracle.features(als, evs, None, hub_degree=hub))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), events(), st.sampled_from([1, 2, 100]))
def test_features_of_some_alerts_equal_their_rows_of_the_whole_table(
    data: st.DataObject, evs: list[dict[str, Any]], hub: int
) -> None:
    # A scan scores only its new alerts: their features, computed alone from the events of their
    # accounts and neighbours, are those the oracle gives with every alert and event known. Without
    # the graph features (a model that does not read them) the rest stay the same.
    als = data.draw(alerts(evs))
    some = data.draw(st.lists(st.sampled_from([a["alert_id"] for a in als]), unique=True))
    graph = data.draw(st.booleans())
    con = store_con(evs, als)
    got = rows(feature_table(con, protected=[], hub_degree=hub, alert_ids=some, graph=graph))
    want = triage_oracle.features(als, evs, [], hub_degree=hub)
    if not graph:
        want = {a: {**w, **dict.fromkeys(GRAPH)} for a, w in want.items()}
    assert_equal(got, {a: want[a] for a in some})


@QUICK
@given(st.data(), events(), outcomes)
def test_case_outcomes_before_the_alert_count(data: st.DataObject, evs: list[dict[str, Any]], outs: Any) -> None:
    als = data.draw(alerts(evs))
    con = store_con(evs, als)
    con.execute("CREATE TABLE outcomes (account VARCHAR, outcome VARCHAR, ts TIMESTAMP)")
    if outs:
        con.executemany("INSERT INTO outcomes VALUES (?, ?, ?)", outs)
    got = rows(feature_table(con, outcomes="outcomes", protected=[]))
    assert_equal(got, triage_oracle.features(als, evs, outs))


def _planted(
    evs: list[dict[str, Any]], at: datetime, event_id: str, source: str, pair: tuple[str, str]
) -> list[dict[str, Any]]:
    # A large cash payment between two accounts: it would move most features of either.
    new = {"source": source, "event_id": event_id, "ts": at, "kind": "cash_deposit", "actor": pair[0],
           "counterparty": pair[1], "amount": Decimal("999.99"), "currency": "EUR", "channel": "CASH"}  # fmt: skip
    return [*evs, new]


@QUICK
@given(st.data(), events(), st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(days=2)]))
def test_an_event_after_the_alert_changes_no_feature(
    data: st.DataObject, evs: list[dict[str, Any]], later: timedelta
) -> None:
    als = data.draw(alerts(evs))
    alert = data.draw(st.sampled_from(als))
    pair = data.draw(st.tuples(st.sampled_from([*ACCOUNTS, "zz-new"]), st.sampled_from([*ACCOUNTS, "zz-new"])))
    con = store_con(evs, als)
    before = rows(feature_table(con, protected=[]))
    # At the same time, the planted event comes after the firing event in (ts, event_id, source)
    # order ('~' sorts after every id drawn); later times come after it whatever their id.
    event_id = alert["fire_event_id"] + "~" if later == timedelta(0) else "0"
    load(con, _planted(evs, alert["last_ts"] + later, event_id, alert["fire_source"], pair), als)
    after = rows(feature_table(con, protected=[]))
    assert after[alert["alert_id"]] == before[alert["alert_id"]]


def test_an_event_at_the_alert_time_counts_only_before_the_firing_event() -> None:
    # Three events at one time; the alert fires at the middle one. The first is known, the last not.
    t = BASE + timedelta(days=5)
    evs = [
        {"source": "s", "event_id": e, "ts": t, "kind": "transfer", "actor": "a", "counterparty": cp,
         "amount": Decimal(10), "currency": "EUR", "channel": None}
        for e, cp in (("1", "b"), ("2", "c"), ("3", "d"))
    ]  # fmt: skip
    alert = {"alert_id": "x", "rule_id": "r", "severity": "high", "group_key": "actor=a", "last_ts": t,
             "fire_source": "s", "fire_event_id": "2", "evidence_sources": ["s", "s", "s"],
             "evidence": ["1", "2", "3"]}  # fmt: skip
    got = rows(feature_table(store_con(evs, [alert]), protected=[]))["x"]
    assert got["evidence_events"] == 2  # "3" is evidence, but after the firing event
    assert got["group_events_out"] == 2
    assert got["out_degree"] == 2
    assert got["evidence_amount"] == 20
    assert_equal({"x": got}, triage_oracle.features([alert], evs, []))


def test_later_alerts_do_not_count() -> None:
    t = BASE + timedelta(days=5)
    evs = [
        {"source": "s", "event_id": str(i), "ts": t + timedelta(hours=i), "kind": "transfer", "actor": "a",
         "counterparty": "b", "amount": Decimal(1), "currency": "EUR", "channel": None}
        for i in range(3)
    ]  # fmt: skip

    def alert(i: int, rule: str) -> dict[str, Any]:
        return {"alert_id": f"x{i}", "rule_id": rule, "severity": "low", "group_key": "actor=a",
                "last_ts": t + timedelta(hours=i), "fire_source": "s", "fire_event_id": str(i),
                "evidence_sources": ["s"], "evidence": [str(i)]}  # fmt: skip

    als = [alert(0, "r1"), alert(1, "r2"), alert(2, "r1")]
    got = rows(feature_table(store_con(evs, als), protected=[]))
    assert [got[f"x{i}"]["earlier_alerts"] for i in range(3)] == [0, 1, 2]
    assert [got[f"x{i}"]["other_rule_alerts"] for i in range(3)] == [0, 1, 1]


def test_features_read_no_protected_attribute() -> None:
    check_protected(FEATURES, protected=[])  # the built-in special categories
    assert all(f.reads is not None and f.name.isidentifier() and "{value" in f.sentence for f in FEATURES)
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    # A deployment that marks a field protected refuses every feature reading it, by name.
    with pytest.raises(RuleError, match=r"feature 'group_cash_share' reads 'channel'.*marks protected"):
        check_protected(FEATURES, protected=["channel"])
    with pytest.raises(RuleError, match="protected attribute"):
        check_protected([Feature("x", "{value}", ("attrs.religion",), "group")], protected=[])
    con = store_con([], [])
    with pytest.raises(RuleError, match="marks protected"):
        feature_table(con, protected=["amount"])


def test_sentences_format_their_values() -> None:
    for f in FEATURES:
        assert f.sentence.format(value=1.5)


def test_spark_gives_the_same_features(spark: Any) -> None:
    from flagstone.engines.spark.load import create_views
    from flagstone.triage.features import spark_feature_table

    rng = random.Random(3)
    t0 = BASE
    evs = []
    for i in range(400):
        actor = f"a{rng.randrange(25)}"
        cp = rng.choice([f"a{rng.randrange(25)}", None, "hub"])
        evs.append(
            {"source": rng.choice(["s1", "s2"]), "event_id": f"{rng.randrange(50)}-{i}",
             "ts": t0 + timedelta(hours=rng.randrange(24 * 40)), "kind": rng.choice(["transfer", "cash_deposit"]),
             "actor": actor, "counterparty": cp, "amount": Decimal(rng.randrange(1, 10**6)) / 100,
             "currency": "EUR", "channel": rng.choice([None, "CASH", "online"])}
        )  # fmt: skip
    als = []
    for i in range(60):
        fire = rng.choice(evs)
        ev = sorted(
            {(e["source"], e["event_id"]): e for e in [*rng.sample(evs, 4), fire]}.values(), key=triage_oracle.key
        )
        group = rng.choice([f"actor={fire['actor']}", f"counterparty={fire['counterparty']}",
                            f"actor={fire['actor']}, counterparty={rng.choice(evs)['actor']}", "place=p"])  # fmt: skip
        als.append(
            {"alert_id": f"al{i}", "rule_id": rng.choice(["r1", "r2"]), "severity": "medium", "group_key": group,
             "last_ts": fire["ts"], "fire_source": fire["source"], "fire_event_id": fire["event_id"],
             "evidence_sources": [e["source"] for e in ev], "evidence": [e["event_id"] for e in ev]}
        )  # fmt: skip
    outs = [(f"a{rng.randrange(25)}", rng.choice(["filed", "dismissed"]), t0 + timedelta(days=rng.randrange(40)))
            for _ in range(30)]  # fmt: skip
    con = store_con(evs, als)
    con.execute("CREATE TABLE outcomes (account VARCHAR, outcome VARCHAR, ts TIMESTAMP)")
    con.executemany("INSERT INTO outcomes VALUES (?, ?, ?)", outs)
    expected = feature_table(con, outcomes="outcomes", protected=[], hub_degree=8)

    create_views(spark, evs, {}, events_view="tf_events")
    spark.createDataFrame(
        [tuple(a[c] for c in ALERT_COLUMNS) for a in als],
        "alert_id string, rule_id string, severity string, group_key string, last_ts timestamp_ntz, "
        "fire_source string, fire_event_id string, evidence_sources array<string>, evidence array<string>",
    ).createOrReplaceTempView("tf_alerts")
    spark.createDataFrame(outs, "account string, outcome string, ts timestamp_ntz").createOrReplaceTempView("tf_out")
    got = spark_feature_table(spark, "tf_alerts", "tf_events", outcomes_view="tf_out", protected=[], hub_degree=8)
    assert got.column_names == expected.column_names
    assert got.sort_by("alert_id").to_pylist() == expected.sort_by("alert_id").to_pylist()
    assert_equal(rows(expected), triage_oracle.features(als, evs, outs, hub_degree=8))
    # Not vacuous: most features vary across these alerts.
    varied = [n for n in FEATURE_NAMES if len({r[n] for r in expected.to_pylist()}) > 2]
    assert len(varied) >= len(FEATURE_NAMES) - 2, varied
    assert json.dumps(expected.schema.names)  # the names are plain text


def test_every_feature_is_documented_with_its_sentence() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "triage.md").read_text(encoding="utf-8")
    for f in FEATURES:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{f.name}` |")), None)
        assert row is not None, f.name
        assert f.sentence in row and all(f"`{r}`" in row for r in f.reads), f.name


def test_real_alerts_of_a_scan_equal_the_oracle(tmp_path: Path) -> None:
    # Alerts as the engines make them (group keys, episode evidence running past the firing event),
    # from the graph and AML packs on dense random transfers among a few accounts.
    from flagstone.rules import load_rules
    from flagstone.scan import scan_store
    from flagstone.store import Store

    rng = random.Random(7)
    evs = []
    for i in range(400):
        kind = rng.choice(["transfer", "transfer", "transfer", "payment", "cash_deposit"])
        transfer = kind == "transfer"
        evs.append(
            {"source": "gen", "event_id": f"m{i:03d}", "ts": BASE + timedelta(hours=rng.randrange(24 * 20)),
             "kind": kind, "actor": f"a{rng.randrange(12)}",
             "counterparty": f"a{rng.randrange(12)}" if transfer else None,
             "amount": Decimal(rng.randrange(100, 10**6)) / 100, "currency": "EUR", "channel": None}
        )  # fmt: skip
    repo = Path(__file__).resolve().parent.parent
    with Store(tmp_path / "s.duckdb") as store:
        load(store.con, evs, [])
        scan_store(store, load_rules([repo / "packs" / "aml-graph", repo / "packs" / "aml"]), progress=False)
        als = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in store.con.execute(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts").fetchall()]  # fmt: skip
        assert len({a["rule_id"] for a in als}) >= 4
        # Not vacuous: some episode evidence runs past the firing event and must be left out.
        by_id = {e["event_id"]: e for e in evs}
        assert any(triage_oracle.key(by_id[e]) > triage_oracle.cut(a) for a in als for e in a["evidence"])
        got = rows(feature_table(store.con, protected=[]))
    assert_equal(got, triage_oracle.features(als, evs, []))


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_feature_sql_matches_golden_file(dialect: str) -> None:
    # The statement each engine runs, kept so that a change shows in review (as tests/golden/sql);
    # regenerate after an intended change with FLAGSTONE_UPDATE_GOLDEN=1.
    import os

    import sqlglot

    from flagstone.triage._sql import feature_sql

    sql = sqlglot.transpile(feature_sql("alerts", "events", "outcomes", dialect), read=dialect, pretty=True)[0] + "\n"
    path = Path(__file__).parent / "golden" / "triage" / f"features.{dialect}.sql"
    if os.environ.get("FLAGSTONE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(sql)
    assert path.exists(), f"no golden file {path}; run with FLAGSTONE_UPDATE_GOLDEN=1"
    assert sql == path.read_text()
