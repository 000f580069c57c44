"""A small scanned demo store, and an oversight set-up on it: three teams, one user of each role
(two supervisors in team aml, for four eyes), and cases synced from the alerts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select

from flagstone.config import Cases, Config
from flagstone.demo import PACKS, find_packs
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.oversight import cases as ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import case_events, cases
from flagstone.oversight.sync import sync_alerts
from flagstone.oversight.users import User, create_user
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
    people = {
        name: create_user(ov, "cli:test", name, PASSWORD, role, team, f"{name.title()} Tester")
        for name, (role, team) in PEOPLE.items()
    }
    with Store(store, read_only=True) as st:
        sync_alerts(ov, st)
    return Setup(ov, people, store)


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
            report_xml=None,
        )
        new_id = int(con.execute(insert(cases).values(**data)).inserted_primary_key[0])  # type: ignore[index]
        ev = [dict(r._mapping) for r in con.execute(select(case_events).where(case_events.c.case_id == row.id))]
        con.execute(insert(case_events), [{**e, "case_id": new_id} for e in ev])
    if state in ("proposed", "approved"):
        ops.act(s.ov, s.users["sam"], new_id, "propose", "structuring")
    if state == "approved":
        ops.act(s.ov, s.users["sue"], new_id, "approve")
    return new_id
