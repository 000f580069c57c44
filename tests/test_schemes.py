"""Schemes: alerts with mostly the same evidence are linked (schemes.py), checked against a plain
Python oracle; and a scheme's alerts make one case, whichever rule or parameter set fired them."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from case_db import db_url  # noqa: F401 - fixture
from conftest import REPO, ev, load_duckdb
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import audit_entries, case_alerts, case_events, cases
from flagstone.oversight.sync import sync_alerts
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.schemes import MAX_ALERTS, MIN_JACCARD, group, link_alerts
from flagstone.store import Store

EVENTS = [f"e{i}" for i in range(10)]
alerts_st = st.lists(st.lists(st.sampled_from(EVENTS), min_size=1, max_size=6, unique=True), max_size=12)


def alerts_con(evidence: list[list[str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE alerts (alert_id VARCHAR, fire_source VARCHAR, fire_event_id VARCHAR, "
        "evidence_sources VARCHAR[], evidence VARCHAR[])"
    )
    for k, evs in enumerate(evidence):
        # The firing event is the last of the evidence, as the engines make it.
        con.execute("INSERT INTO alerts VALUES (?, 's', ?, ?, ?)", [f"a{k:02d}", evs[-1], ["s"] * len(evs), evs])
    return con


def oracle(evidence: list[list[str]], cap: int) -> dict[str, str]:
    sets = {f"a{k:02d}": set(evs) for k, evs in enumerate(evidence)}
    links = []
    for a, b in itertools.combinations(sorted(sets), 2):
        j = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
        if j >= MIN_JACCARD:
            links.append((-j, a, b))
    groups = {a: {a} for a in sets}
    for _, a, b in sorted(links):
        if groups[a] is not groups[b] and len(groups[a]) + len(groups[b]) <= cap:
            merged = groups[a] | groups[b]
            for x in merged:
                groups[x] = merged
    return {a: min(g) for a, g in groups.items()}


@settings(max_examples=80, deadline=None)
@given(alerts_st, st.sampled_from([2, 3, MAX_ALERTS]))
def test_link_alerts_equals_the_oracle(evidence: list[list[str]], cap: int) -> None:
    got = link_alerts(alerts_con(evidence), max_size=cap)
    assert got == oracle(evidence, cap)
    sizes: dict[str, int] = {}
    for scheme in got.values():
        sizes[scheme] = sizes.get(scheme, 0) + 1
    assert all(n <= cap for n in sizes.values())


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=20))
def test_group_without_a_cap_is_connected_components(pairs: list[tuple[int, int]]) -> None:
    ids = [f"n{i}" for i in range(10)]
    links = [(f"n{a}", f"n{b}") for a, b in pairs]
    got = group(ids, links, max_size=len(ids))
    # Breadth-first search from each id.
    for start in ids:
        seen, todo = {start}, [start]
        while todo:
            x = todo.pop()
            for a, b in links:
                for y in (b,) if a == x else (a,) if b == x else ():
                    if y not in seen:
                        seen.add(y)
                        todo.append(y)
        assert got[start] == min(seen)


# Three cash deposits just under the threshold: the structuring rule fires, and so does a second
# rule written for the same typology with other words (another team's copy): one scheme.
COPY = (REPO / "packs" / "aml" / "structuring.yaml").read_text().replace("id: aml.structuring", "id: t.structuring")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flagstone.duckdb"
    with Store(path) as st_:
        load_duckdb(
            st_.con,
            [ev(f"d{i}", 20 * i, kind="cash_deposit", amount=amount) for i, amount in enumerate([9500, 9900, 9100])],
            {},
        )
    (tmp_path / "rules").mkdir()
    shutil.copy(REPO / "packs" / "aml" / "structuring.yaml", tmp_path / "rules" / "structuring.yaml")
    (tmp_path / "rules" / "copy.yaml").write_text(COPY)
    yield path


def audited(ov: Oversight, action: str) -> list[Any]:
    with ov.engine.connect() as con:
        return list(con.execute(select(audit_entries).where(audit_entries.c.action == action)).all())


def case_rows(ov: Oversight) -> dict[int, list[str]]:
    with ov.engine.connect() as con:
        rows = con.execute(select(case_alerts.c.case_id, case_alerts.c.rule_id).order_by(case_alerts.c.rule_id))
        out: dict[int, list[str]] = {}
        for case_id, rule_id in rows:
            out.setdefault(case_id, []).append(rule_id)
    return out


def test_two_rules_firing_on_one_scheme_make_one_case(store: Path, db_url: str) -> None:  # noqa: F811
    rules_dir = store.parent / "rules"
    with Store(store) as st_:
        result = scan_store(st_, load_rules([rules_dir]), progress=False)
        assert result.alerts == 2 and result.schemes == 1
    ov = Oversight.open(store, db_url)
    try:
        with Store(store, read_only=True) as st_:
            synced = sync_alerts(ov, st_)
        assert synced.cases == 1
        assert list(case_rows(ov).values()) == [["aml.structuring", "t.structuring"]]
        assert len(audited(ov, "case_created")) == 1 and len(audited(ov, "alert_joined_case")) == 1
        with ov.engine.connect() as con:
            assert con.execute(select(case_events.c.event_id).order_by(case_events.c.event_id)).scalars().all() == [
                "d0",
                "d1",
                "d2",
            ]  # the union of their evidence, each event once

        # The same finding under other thresholds (another parameter set) joins the same case.
        with Store(store) as st_:
            scan_store(st_, load_rules([rules_dir], overrides=["aml.structuring.min_deposits=2"]), progress=False)
            synced = sync_alerts(ov, st_)
        assert synced.cases == 0
        (held,) = case_rows(ov).values()
        assert held.count("aml.structuring") == 2

        # Once the case is closed, a new alert of the scheme makes a new case.
        with ov.engine.begin() as con:
            con.execute(update(cases).values(state="dismissed"))
        with Store(store) as st_:
            scan_store(st_, load_rules([rules_dir], overrides=["aml.structuring.min_deposits=1"]), progress=False)
            synced = sync_alerts(ov, st_)
        assert synced.cases == 1 and len(case_rows(ov)) == 2
    finally:
        ov.close()


def test_alerts_with_little_in_common_stay_apart() -> None:
    # Two alerts sharing one of five events each: Jaccard 1/9, below the bar.
    got = link_alerts(alerts_con([["e0", "e1", "e2", "e3", "e4"], ["e4", "e5", "e6", "e7", "e8"]]))
    assert got == {"a00": "a00", "a01": "a01"}
