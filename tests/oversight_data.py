"""A small scanned demo store, and an oversight set-up on it: three teams, one user of each role
(two supervisors in team aml, for four eyes), and cases synced from the alerts.

The admin is made first (the bootstrap admin of an empty case database); the supervisors are then
asked for on the command line and approved by that admin, as a second person (docs/oversight.md)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from flagstone.config import Cases, Config
from flagstone.demo import PACKS, find_packs
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.oversight import cases as ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import case_events, cases
from flagstone.oversight.sync import sync_alerts
from flagstone.oversight.users import Grant, User, approve_grant, create_user
from flagstone.oversight.workflow import CaseState
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

PASSWORD = "correct horse battery"
TEAMS = {"aml": ["aml.", "pep."], "precursors": ["precursors."], "transit": ["transit."]}
PEOPLE = {
    "ana": ("analyst", "aml"),
    "abe": ("analyst", "aml"),
    "sam": ("supervisor", "aml"),
    "sue": ("supervisor", "aml"),
    "pat": ("analyst", "precursors"),
    "pia": ("supervisor", "precursors"),
    "aud": ("auditor", "compliance"),
    "adm": ("admin", "compliance"),
}
CONFIG = Config(cases=Cases(teams=TEAMS))


def build_scanned_store(folder: Path, events: int = 20_000, seed: int = 3) -> Path:
    """Generate, ingest and scan a demo; returns the store path (its key file lies beside it)."""
    info = generate_demo(folder / "data", events=events, seed=seed, progress=False)
    path = folder / "flagstone.duckdb"
    with Store(path) as st:
        for data, mapping in info.ingest_order():
            ingest_file(st, data, mapping, progress=False)
        packs = find_packs()
        scan_store(st, load_rules([packs / p for p in PACKS], protected=[]), progress=False)
    return path


def copy_store(store: Path, dest: Path) -> Path:
    """A private copy of the store and its pseudonymisation key."""
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".key"):
        shutil.copy2(f"{store}{suffix}", f"{dest / store.name}{suffix}")
    return dest / store.name


@dataclass
class Setup:
    ov: Oversight
    users: dict[str, User]
    store: Path


def set_up(store: Path, db_url: str) -> Setup:
    ov = Oversight.open(store, db_url, CONFIG)
    made = {
        name: create_user(ov, "cli:test", name, PASSWORD, role, team, f"{name.title()} Tester")
        for name, (role, team) in sorted(PEOPLE.items(), key=lambda p: p[1][0] != "admin")
    }
    admin = made["adm"]
    assert isinstance(admin, User)
    people = {name: approve_grant(ov, admin, u.id) if isinstance(u, Grant) else u for name, u in made.items()}
    with Store(store, read_only=True) as st:
        sync_alerts(ov, st)
    return Setup(ov, {name: people[name] for name in PEOPLE}, store)


def approve(s: Setup, name: str, case_id: int) -> CaseState:
    """``name`` approves the proposal the case page shows them (the identity the form carries)."""
    shown = ops.view_case(s.ov, s.users[name], case_id).proposal
    return ops.act(s.ov, s.users[name], case_id, "approve", seen=shown["sha256"] if shown else None)


def clone_case(s: Setup, team: str = "aml", state: str = "open") -> int:
    """A fresh case (a copy of the team's first case, with its evidence) brought to ``state``."""
    with s.ov.engine.begin() as con:
        row = con.execute(select(cases).where(cases.c.team == team).order_by(cases.c.id).limit(1)).one()
        data = {k: v for k, v in row._mapping.items() if k != "id"}
        n = con.execute(select(cases.c.id).order_by(cases.c.id.desc()).limit(1)).scalar_one()
        data.update(
            alert_id=f"clone-{n + 1}",
            state="open",
            proposer_id=None,
            approver_id=None,
            filer_id=None,
            assignee_id=None,
        )
        new_id = int(con.execute(insert(cases).values(**data)).inserted_primary_key[0])  # type: ignore[index]
        ev = [dict(r._mapping) for r in con.execute(select(case_events).where(case_events.c.case_id == row.id))]
        con.execute(insert(case_events), [{**e, "case_id": new_id} for e in ev])
    if state in ("proposed", "approved"):
        ops.act(s.ov, s.users["sam"], new_id, "propose", "structuring")
    if state == "approved":
        approve(s, "sue", new_id)
    return new_id


# Fixtures (conftest.py makes them available) for tests on both case databases:
# one scanned store per module, a fresh set-up on a copy of it per test.
@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scanned_store(tmp_path_factory.mktemp("scanned"))


@pytest.fixture
def setup(scanned: Path, db_url: str, tmp_path: Path) -> Iterator[Setup]:
    s = set_up(copy_store(scanned, tmp_path / "store"), db_url)
    yield s
    s.ov.close()
