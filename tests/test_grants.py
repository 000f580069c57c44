"""Granting the supervisor or admin role needs a second admin (issue 13, item 12), on both case
databases: one admin alone cannot make supervisors (through the web, the library or the command
line run under their own name), whatever they try in whatever order (a property test); a second
admin's approval makes them, and the audit log says who granted what to whom; the command line
bootstraps the first admin; single-admin mode is flagged in the audit log and on every page."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oversight_data import CONFIG, PASSWORD, copy_store
from sqlalchemy import delete, select, update
from test_oversight_cli import run
from web_client import form, login

from flagstone.config import Config, Security
from flagstone.errors import InputError
from flagstone.oversight import cases as ops
from flagstone.oversight import users as user_ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.roles import PRIVILEGED, ROLES
from flagstone.oversight.schema import (
    audit_entries,
    cases,
    comments,
    proposals,
    reveals,
    role_grants,
    sessions,
    users,
)
from flagstone.oversight.sync import sync_alerts
from flagstone.oversight.users import Grant, LoginError, User, approve_grant, authenticate, create_user
from flagstone.oversight.workflow import NotPermitted, WorkflowError
from flagstone.store import Store
from flagstone.web import create_web_app

BANNER = 'id="single-admin"'


def open_fresh(scanned: Path, db_url: str, tmp_path: Path, config: Config = CONFIG) -> Oversight:
    """A case database with cases and no user at all, as on a fresh deployment."""
    ov = Oversight.open(copy_store(scanned, tmp_path / "store"), db_url, config)
    with Store(ov.store_path, read_only=True) as st:
        sync_alerts(ov, st)
    return ov


@pytest.fixture
def fresh(scanned: Path, db_url: str, tmp_path: Path) -> Iterator[Oversight]:
    ov = open_fresh(scanned, db_url, tmp_path)
    yield ov
    ov.close()


def privileged(ov: Oversight) -> dict[str, str]:
    with ov.engine.connect() as con:
        rows = con.execute(select(users.c.username, users.c.role).where(users.c.role.in_(sorted(PRIVILEGED))))
        return {r.username: r.role for r in rows}


def audited(ov: Oversight, action: str) -> list[dict[str, Any]]:
    with ov.engine.connect() as con:
        rows = con.execute(select(audit_entries).where(audit_entries.c.action == action).order_by(audit_entries.c.seq))
        return [{**r._mapping, "details": json.loads(r.details)} for r in rows]


def bootstrap(ov: Oversight, name: str = "ann", by: str = "cli:installer") -> User:
    made = create_user(ov, by, name, PASSWORD, "admin", "compliance", f"{name.title()} Admin")
    assert isinstance(made, User), made
    return made


def add_user(client: Any, name: str, role: str, team: str = "aml") -> Any:
    fields = form(client.get("/admin/users").text, "/admin/users")
    data = {**fields, "username": name, "role": role, "team": team, "password": PASSWORD}
    return client.post("/admin/users", data=data)


def grant_ids(ov: Oversight, username: str) -> list[int]:
    with ov.engine.connect() as con:
        return list(con.execute(select(role_grants.c.id).where(role_grants.c.username == username)).scalars())


# -- one admin alone --------------------------------------------------------------------------------


def test_one_admin_alone_cannot_make_two_supervisors_through_the_web(fresh: Oversight) -> None:
    ov = fresh
    bootstrap(ov)
    client = login(create_web_app(ov), "ann")
    for name in ("s1", "s2"):
        r = add_user(client, name, "supervisor")
        assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=requested", r.headers
    assert privileged(ov) == {"ann": "admin"}  # neither exists yet
    with pytest.raises(LoginError):
        authenticate(ov, "s1", PASSWORD)
    page = client.get("/admin/users").text
    assert 'id="grants"' in page and "s1" in page and "approve-grant-" not in page  # nothing of hers to approve
    for gid in grant_ids(ov, "s1"):
        r = client.post(f"/admin/grants/{gid}/approve", data=form(page, f"/admin/grants/{gid}/refuse"))
        assert r.status_code == 403 and "a second admin must approve it" in r.text
    # A second admin of her own making waits as well; so does promoting an analyst she made.
    assert add_user(client, "bob", "admin", "compliance").headers["location"] == "/admin/users?done=requested"
    assert add_user(client, "ana", "analyst").headers["location"] == "/admin/users?done=added"
    promote = form(client.get("/admin/users").text, "/admin/users/ana/role")
    assert client.post("/admin/users/ana/role", data={**promote, "role": "supervisor"}).status_code == 303
    assert privileged(ov) == {"ann": "admin"}
    failures = [e for e in audited(ov, "authorisation_failed") if e["target"].startswith("role grant #")]
    assert failures and all(e["actor"] == "ann" for e in failures)
    assert {e["target"] for e in audited(ov, "role_grant_requested")} == {"s1", "s2", "bob", "ana"}


def test_a_second_admin_approves_and_the_log_says_who_granted_what_to_whom(fresh: Oversight) -> None:
    ov = fresh
    ann = bootstrap(ov)
    bob_grant = create_user(ov, "cli:installer", "bob", PASSWORD, "admin", "compliance")
    assert isinstance(bob_grant, Grant) and privileged(ov) == {"ann": "admin"}
    approve_grant(ov, ann, bob_grant.id)  # the installer asked, ann approves: two people
    app = create_web_app(ov)
    ann_web, bob_web = login(app, "ann"), login(app, "bob")
    for name in ("s1", "s2"):
        assert add_user(ann_web, name, "supervisor").status_code == 303
    page = bob_web.get("/admin/users").text
    for name in ("s1", "s2"):
        [gid] = grant_ids(ov, name)
        assert f'id="approve-grant-{gid}"' in page
        r = bob_web.post(f"/admin/grants/{gid}/approve", data=form(page, f"/admin/grants/{gid}/approve"))
        assert r.headers["location"] == "/admin/users?done=granted"
    assert privileged(ov) == {"ann": "admin", "bob": "admin", "s1": "supervisor", "s2": "supervisor"}
    granted = {(e["actor"], e["target"], e["details"]["role"], e["details"]["requested_by"], e["details"]["mode"])
               for e in audited(ov, "role_granted")}  # fmt: skip
    assert granted == {
        ("cli:installer", "ann", "admin", "cli:installer", "bootstrap"),
        ("ann", "bob", "admin", "cli:installer", "second admin"),
        ("bob", "s1", "supervisor", "ann", "second admin"),
        ("bob", "s2", "supervisor", "ann", "second admin"),
    }
    # Now a report can pass four eyes: two supervisors, made by two admins.
    s1, s2 = (authenticate(ov, n, PASSWORD) for n in ("s1", "s2"))
    with ov.engine.connect() as con:
        cid = con.execute(select(cases.c.id).where(cases.c.team == "aml").limit(1)).scalar_one()
    ops.act(ov, s1, cid, "propose", "structuring")
    shown = ops.view_case(ov, s2, cid).proposal
    ops.act(ov, s2, cid, "approve", seen=shown["sha256"] if shown else None)
    assert ops.act(ov, s1, cid, "file").state == "filed"


def test_a_grant_cannot_be_approved_by_the_one_who_gets_it_nor_twice(fresh: Oversight) -> None:
    ov = fresh
    ann = bootstrap(ov)
    bob = approve_grant(ov, ann, _grant(create_user(ov, "cli:installer", "bob", PASSWORD, "admin", "compliance")))
    demote = user_ops.set_role(ov, "ann", "bob", "analyst")  # lowering a role needs nobody
    assert isinstance(demote, User) and privileged(ov) == {"ann": "admin"}
    back = _grant(user_ops.set_role(ov, "cli:installer", "bob", "admin"))
    with pytest.raises(NotPermitted, match="only an active admin"):
        approve_grant(ov, bob, back)  # bob is an analyst now
    own = _grant(user_ops.set_role(ov, "ann", "ann", "supervisor"))
    with pytest.raises(NotPermitted):
        approve_grant(ov, ann, own)
    approve_grant(ov, ann, back)
    with pytest.raises(InputError, match="granted already"):
        approve_grant(ov, ann, back)
    with pytest.raises(InputError, match="no role grant #"):
        approve_grant(ov, ann, 2**70)  # a number no database integer holds
    with pytest.raises(InputError, match="already pending"):
        user_ops.set_role(ov, "bob", "ann", "supervisor")
    refused = user_ops.refuse_grant(ov, "bob", own)
    assert refused.username == "ann" and privileged(ov) == {"ann": "admin", "bob": "admin"}
    with ov.engine.connect() as con:
        hashes = set(con.execute(select(role_grants.c.password_hash)).scalars())
    assert hashes == {None}  # no decided grant keeps a password hash


def test_hostile_grant_requests_get_a_clear_refusal(fresh: Oversight) -> None:
    ov = fresh
    ann = bootstrap(ov)
    app = create_web_app(ov)
    client = login(app, "ann")
    assert add_user(client, "s1", "supervisor").status_code == 303
    [gid] = grant_ids(ov, "s1")
    token = form(client.get("/admin/users").text, "/admin/users")
    cases_ = {
        f"/admin/grants/{2**64}/approve": 404,  # no database integer holds it
        "/admin/grants/999999/refuse": 404,
        "/admin/grants/-1/approve": 404,
        f"/admin/grants/{gid}/explode": 404,
        "/admin/grants/one/approve": 404,  # a malformed id names nothing, like a case id (docs/oversight.md)
        "/admin/users/nobody/role": 409,
        "/admin/users/s1/role": 409,  # s1 does not exist until approved
    }
    for path, code in cases_.items():
        r = client.post(path, data={**token, "role": "supervisor"})
        assert r.status_code == code, (path, r.status_code)
    assert client.post("/admin/users/ann/role", data={**token, "role": "boss"}).status_code == 409
    assert client.post(f"/admin/grants/{gid}/approve", data={}).status_code == 403  # no CSRF token
    create_user(ov, "cli:installer", "ana", PASSWORD, "analyst", "aml")
    analyst = login(app, "ana")
    r = analyst.post(f"/admin/grants/{gid}/approve", data=form(analyst.get("/queue").text, "/logout"))
    assert r.status_code == 403
    assert privileged(ov) == {"ann": "admin"} and ann.role == "admin"
    missing = [e for e in audited(ov, "authorisation_failed") if "no role grant" in e["details"]["reason"]]
    assert len(missing) == 3


def _grant(made: User | Grant) -> int:
    assert isinstance(made, Grant), made
    return made.id


# Ann, alone, with her admin account and a shell under her own name: whatever she does, in any
# order, no other account gets a privileged role and no report is filed. (The choices lean to the
# privileged roles and to Ann's own account, where a hole would be.)
NAMES = ["s1", "s2", "bob"]
ACTORS = ["ann", "cli:ann"]
ROLE = st.sampled_from(["supervisor", "admin", "supervisor", "admin", *ROLES])
step = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(ACTORS), st.sampled_from(NAMES), ROLE),
    st.tuples(st.just("role"), st.sampled_from(ACTORS), st.sampled_from([*NAMES, "ann", "ann"]), ROLE),
    st.tuples(st.just("approve"), st.sampled_from(["ann", "ann", *NAMES]), st.integers(0, 3), st.just("")),
    st.tuples(st.just("refuse"), st.sampled_from(ACTORS), st.integers(0, 3), st.just("")),
    st.tuples(st.just("case"), st.sampled_from(NAMES), st.sampled_from(["propose", "approve", "file"]), st.just("")),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=2, max_size=12))
def test_no_sequence_of_one_admins_actions_files_a_report(fresh: Oversight, steps: list[tuple[Any, ...]]) -> None:
    ov = fresh
    with ov.engine.begin() as con:  # every example starts from a fresh deployment with the same cases
        con.execute(update(cases).values(state="open", proposal=None, **dict.fromkeys(PEOPLE_COLUMNS)))
        for table in (proposals, comments, reveals, sessions, role_grants, users):
            con.execute(delete(table))
    bootstrap(ov, by="cli:ann")  # she installed it too
    one_admins_actions(ov, steps)


PEOPLE_COLUMNS = ("assignee_id", "proposer_id", "approver_id", "filer_id")


def one_admins_actions(ov: Oversight, steps: list[tuple[Any, ...]]) -> None:
    with ov.engine.connect() as con:
        cid = con.execute(select(cases.c.id).where(cases.c.team == "aml").order_by(cases.c.id).limit(1)).scalar_one()
    refused = (InputError, NotPermitted, LoginError, ops.Refusal, WorkflowError)
    for kind, who, what, extra in steps:
        with contextlib.suppress(*refused):
            if kind == "create":
                create_user(ov, who, what, PASSWORD, extra, "aml" if extra != "admin" else "compliance")
            elif kind == "role":
                user_ops.set_role(ov, who, what, extra)
            elif kind in ("approve", "refuse"):
                pending = user_ops.list_grants(ov)
                if pending:
                    gid = int(str(pending[what % len(pending)]["id"]))
                    if kind == "approve":
                        approve_grant(ov, authenticate(ov, who, PASSWORD), gid)
                    else:
                        user_ops.refuse_grant(ov, who, gid)
            else:
                me = authenticate(ov, who, PASSWORD)
                shown = ops.view_case(ov, me, cid).proposal if what == "approve" else None
                ops.act(ov, me, cid, what, "structuring", seen=shown["sha256"] if shown else None)
        assert set(privileged(ov).items()) <= {("ann", "admin")}  # she may lower her own role, no more
        with ov.engine.connect() as con:
            assert con.execute(select(cases.c.state).where(cases.c.id == cid)).scalar_one() not in ("approved", "filed")


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def cli_store(scanned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./flagstone.yaml by accident
    for name in ("FLAGSTONE_DB", "FLAGSTONE_CONFIG", "FLAGSTONE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return copy_store(scanned, tmp_path / "store").resolve()


def cli_users(store: Path, *args: str, code: int = 0, stdin: str | None = None) -> str:
    return run(["users", *args, "--store", str(store)], code, stdin).output


def test_the_command_line_bootstraps_one_admin_and_asks_for_the_rest(cli_store: Path) -> None:
    me = getpass.getuser()
    out = cli_users(cli_store, "add", "ann", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert "user ann added (admin, team compliance)" in out  # the bootstrap: no admin existed
    out = cli_users(cli_store, "add", "sam", "--role", "supervisor", "--team", "aml", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
    gid = re.search(r"grant #(\d+) pending: sam gets the role supervisor \(team aml\)", out)
    assert gid, out
    assert "sam" in cli_users(cli_store, "grants") and "cli:" + me in cli_users(cli_store, "grants")
    wrong = "wrong password\n"
    out = cli_users(cli_store, "approve", gid[1], "--admin", "ann", "--password-stdin", code=2, stdin=wrong)
    assert "wrong user name or password" in out
    out = cli_users(cli_store, "approve", gid[1], "--admin", "ann", "--password-stdin", stdin=PASSWORD + "\n")
    assert f"grant #{gid[1]} approved by ann: sam is supervisor (team aml)" in out
    # A second admin, asked for on the command line, approved by ann; then an admin account named
    # like the shell's user is the same person as the shell: it may not approve what the shell asked.
    out = cli_users(cli_store, "add", me, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    second = re.search(r"grant #(\d+) pending", out)
    assert second, out
    cli_users(cli_store, "approve", second[1], "--admin", "ann", "--password-stdin", stdin=PASSWORD + "\n")
    out = cli_users(cli_store, "add", "sue", "--role", "supervisor", "--team", "aml", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
    sue = re.search(r"grant #(\d+) pending", out)
    assert sue, out
    out = cli_users(cli_store, "approve", sue[1], "--admin", me, "--password-stdin", code=2, stdin=PASSWORD + "\n")
    assert "a second admin must approve it" in out
    assert "user sam is now analyst" in cli_users(cli_store, "role", "sam", "analyst")  # lowering: at once
    out = cli_users(cli_store, "refuse", sue[1])
    assert f"grant #{sue[1]} refused: sue does not get the role supervisor" in out
    assert "sue" not in cli_users(cli_store, "grants") and "refused" in cli_users(cli_store, "grants", "--all")
    ov = Oversight.open(cli_store)
    try:
        assert privileged(ov) == {"ann": "admin", me: "admin"}  # sam went back to analyst
        modes = [(e["target"], e["details"]["mode"]) for e in audited(ov, "role_granted")]
    finally:
        ov.close()
    assert modes == [("ann", "bootstrap"), ("sam", "second admin"), (me, "second admin")]


# -- single-admin mode ------------------------------------------------------------------------------


def test_single_admin_mode_is_flagged_on_every_page_and_in_the_log(scanned: Path, db_url: str, tmp_path: Path) -> None:
    config = Config(cases=CONFIG.cases, security=Security(single_admin=True))
    ov = open_fresh(scanned, db_url, tmp_path, config)
    try:
        bootstrap(ov)
        app = create_web_app(ov)
        assert [e["target"] for e in audited(ov, "single_admin_mode")] == ["(built-in defaults)"]
        assert BANNER in TestClient(app).get("/login").text
        ann = login(app, "ann")
        for name in ("s1", "s2"):  # one admin grants alone: at once, flagged
            assert add_user(ann, name, "supervisor").headers["location"] == "/admin/users?done=added"
        assert privileged(ov) == {"ann": "admin", "s1": "supervisor", "s2": "supervisor"}
        modes = {e["target"]: (e["actor"], e["details"]["mode"]) for e in audited(ov, "role_granted")}
        assert modes["s1"] == modes["s2"] == ("ann", "single-admin mode")
        s1 = login(app, "s1")
        pages = [ann.get("/admin/users"), s1.get("/queue"), s1.get("/cases/999999"), ann.get("/queue")]
        assert [p.status_code for p in pages] == [200, 200, 404, 403]
        assert all(BANNER in p.text for p in pages)
        # The same database without the mode: no banner, and no new entry saying it is on.
        plain = create_web_app(dataclasses.replace(ov, config=CONFIG))
        ann = login(plain, "ann")
        assert all(BANNER not in ann.get(p).text for p in ("/admin/users", "/queue", "/login"))
        assert len(audited(ov, "single_admin_mode")) == 1
    finally:
        ov.close()
