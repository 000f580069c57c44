"""The case review web app over HTTP, on both case databases: which role may use which endpoint
(the matrix), team isolation by id, CSRF on every state-changing request, cookie flags, headers,
and escaping."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from case_db import BACKENDS, fresh_db_url
from fastapi.testclient import TestClient
from oversight_data import PASSWORD, Setup, build_scanned_store, clone_case, copy_store, set_up
from sqlalchemy import select
from web_client import login

from flagstone.oversight import cases as ops
from flagstone.oversight.schema import audit_entries, cases
from flagstone.web import create_web_app

ROLES = {"analyst": "ana", "supervisor": "sue", "auditor": "aud", "admin": "adm"}
# What each role may do; every other cell of the matrix must be refused with 403.
ALLOWED = {
    "queue": {"analyst", "supervisor", "auditor"},
    "view": {"analyst", "supervisor", "auditor"},
    "comment": {"analyst", "supervisor"},
    "assign": {"analyst", "supervisor"},
    "escalate": {"analyst", "supervisor"},
    "dismiss": {"analyst", "supervisor"},
    "propose": {"analyst", "supervisor"},
    "reveal": {"supervisor"},
    "reject": {"supervisor"},
    "approve": {"supervisor"},
    "file": {"supervisor"},
    "download": {"supervisor"},
    "audit": {"auditor"},
    "audit_verify": {"auditor"},
    "users": {"admin"},
    "add_user": {"admin"},
}
# The state a case must be in for the action to make sense, so that an allowed role succeeds.
NEEDS = {"reject": "proposed", "approve": "proposed", "file": "approved", "download": "approved"}


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp(f"web-{request.param}")
    store = build_scanned_store(tmp / "scanned")
    urls = fresh_db_url(request.param, tmp)
    s = set_up(copy_store(store, tmp / "store"), next(urls))
    yield s
    s.ov.close()
    for _ in urls:  # drop the PostgreSQL database
        pass


@pytest.fixture(scope="module")
def app(env: Setup) -> Any:
    return create_web_app(env.ov)


@pytest.fixture(scope="module")
def clients(app: Any) -> dict[str, TestClient]:
    return {role: login(app, name) for role, name in ROLES.items()}


def csrf(client: TestClient) -> str:
    page = client.get("/queue") if client.get("/queue").status_code == 200 else client.get("/admin/users")
    if page.status_code != 200:
        page = client.get("/audit")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def request_for(s: Setup, action: str, case_id: int, token: str) -> tuple[str, str, dict[str, str]]:
    form = {"csrf_token": token}
    if action == "queue":
        return "GET", "/queue", {}
    if action == "view":
        return "GET", f"/cases/{case_id}", {}
    if action == "download":
        return "GET", f"/cases/{case_id}/report.xml", {}
    if action == "audit":
        return "GET", "/audit", {}
    if action == "audit_verify":
        return "POST", "/audit/verify", form
    if action == "users":
        return "GET", "/admin/users", {}
    if action == "add_user":
        return (
            "POST",
            "/admin/users",
            {
                **form,
                "username": f"new{case_id}",
                "role": "analyst",
                "team": "aml",
                "password": "a long enough password",
            },
        )
    if action == "reveal":
        party = ops.view_case(s.ov, s.users["sam"], case_id).parties[0]
        return "POST", f"/cases/{case_id}/reveal", {**form, "pseudonym": party, "reason": "STR preparation"}
    if action == "approve":  # the form names the proposal its page showed
        shown = ops.view_case(s.ov, s.users["sam"], case_id).proposal
        form["proposal"] = str(shown["sha256"]) if shown else ""
    extra = {
        "assign": {"assignee": "ana"},
        "comment": {"body": "seen"},
        "dismiss": {"reason": "explained"},
        "propose": {"text": "suspicious"},
        "reject": {"reason": "more evidence"},
        "escalate": {"note": ""},
    }
    return "POST", f"/cases/{case_id}/{action}", {**form, **extra.get(action, {})}


@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_role_endpoint_matrix(env: Setup, clients: dict[str, TestClient], action: str) -> None:
    for role, client in clients.items():
        case_id = clone_case(env, state=NEEDS.get(action, "open"))
        with env.ov.engine.connect() as con:
            before = con.execute(select(cases).where(cases.c.id == case_id)).one()
        method, path, form = request_for(env, action, case_id, csrf(client))
        r = client.request(method, path, data=form or None)
        if role in ALLOWED[action]:
            assert r.status_code in (200, 303), (role, action, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (role, action, r.status_code)
            with env.ov.engine.connect() as con:
                after = con.execute(select(cases).where(cases.c.id == case_id)).one()
            assert after == before  # nothing changed


@pytest.mark.parametrize(
    "action",
    ["view", "comment", "assign", "escalate", "dismiss", "propose", "reveal", "approve", "reject", "file", "download"],
)
def test_another_teams_case_is_not_found_by_id(env: Setup, app: Any, action: str) -> None:
    case_id = clone_case(env, "aml", NEEDS.get(action, "open"))
    for name, role in (("pat", "analyst"), ("pia", "supervisor")):  # team precursors
        client = login(app, name)
        method, path, form = request_for(env, action, case_id, csrf(client))
        r = client.request(method, path, data=form or None)
        # Where the role may act at all, the case of another team simply does not exist for them.
        expected = 404 if role in ALLOWED[action] else 403
        assert r.status_code == expected, (name, action, r.status_code)
        if expected == 404:
            assert "Not found" in r.text and "alert " not in r.text  # no case data on the page
    with env.ov.engine.connect() as con:
        attempts = con.execute(
            select(audit_entries.c.details).where(
                audit_entries.c.action == "authorisation_failed", audit_entries.c.target == f"/cases/{case_id}"
            )
        ).all()
    assert attempts


def test_every_state_change_needs_the_csrf_token(env: Setup, clients: dict[str, TestClient]) -> None:
    client = clients["supervisor"]
    case_id = clone_case(env)
    for form in ({}, {"csrf_token": "forged"}):
        r = client.post(f"/cases/{case_id}/comment", data={**form, "body": "no token"})
        assert r.status_code == 403 and "CSRF" in r.text
    r = client.post(
        f"/cases/{case_id}/comment",
        data={"csrf_token": csrf(client), "body": "cross-site"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert ops.view_case(env.ov, env.users["sue"], case_id).comments == []
    with env.ov.engine.connect() as con:
        reasons = [
            str(d)
            for d in con.execute(
                select(audit_entries.c.details).where(audit_entries.c.action == "authorisation_failed")
            ).scalars()
        ]
    assert any("CSRF" in r for r in reasons)
    # the log-in form has its own token (double-submit cookie)
    fresh = TestClient(app_of(client), follow_redirects=False)
    r = fresh.post("/login", data={"username": "sue", "password": PASSWORD, "csrf_token": "x"})
    assert r.status_code == 403
    # logging out is a state change too
    assert client.post("/logout", data={}).status_code == 403


def app_of(client: TestClient) -> Any:
    return client.app


def test_session_cookie_flags_and_logout(app: Any) -> None:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    assert "httponly" in page.headers["set-cookie"].lower()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": token})
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "flagstone_session" in v)
    flags = {p.strip().lower() for p in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert client.get("/queue").status_code == 200
    old = client.cookies.get("flagstone_session")
    assert client.post("/logout", data={"csrf_token": csrf(client)}).status_code == 303
    replay = TestClient(app, follow_redirects=False, cookies={"flagstone_session": old or ""})
    assert replay.get("/queue").status_code == 303  # the old session is gone: back to the log-in


def test_anonymous_requests_go_to_the_login(app: Any) -> None:
    client = TestClient(app, follow_redirects=False)
    for path in ("/", "/queue", "/cases/1", "/audit", "/admin/users", "/cases/1/report.xml"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    assert client.post("/cases/1/comment", data={"body": "x"}).status_code == 401


def test_security_headers_and_escaping(env: Setup, clients: dict[str, TestClient]) -> None:
    client = clients["analyst"]
    case_id = clone_case(env)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    assert client.post(f"/cases/{case_id}/comment", data={"csrf_token": csrf(client), "body": evil}).status_code == 303
    page = client.get(f"/cases/{case_id}")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_queue_sorts_by_severity_and_age_and_filters(env: Setup, clients: dict[str, TestClient]) -> None:
    client = clients["auditor"]
    rank = {"critical": 3, "high": 2, "medium": 1, "low": 0}

    def rows(query: str) -> list[tuple[str, str]]:
        html = client.get(f"/queue?{query}").text
        return re.findall(r'<span class="sev-(\w+)">.*?<td>(\d{4}-\d\d-\d\d) \(', html, re.S)

    by_severity = rows("sort=severity&state=")
    assert by_severity and [rank[s] for s, _ in by_severity] == sorted((rank[s] for s, _ in by_severity), reverse=True)
    by_age = rows("sort=age&state=")
    assert [d for _, d in by_age] == sorted(d for _, d in by_age)
    high = rows("severity=high&state=")
    assert high and {s for s, _ in high} == {"high"}


def test_a_locked_out_user_cannot_log_in_through_the_form(env: Setup, app: Any) -> None:
    client = TestClient(app, follow_redirects=False)
    for _ in range(env.ov.config.security.lockout_attempts):
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = client.post("/login", data={"username": "abe", "password": "wrong password!", "csrf_token": token})
        assert r.status_code == 401 and "wrong user name or password" in r.text
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": "abe", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and "locked" in r.text and int(r.headers["retry-after"]) > 0


def test_a_browsers_own_origin_is_accepted_and_a_null_one_refused(env: Setup, app: Any) -> None:
    """Browsers send Origin on form posts; with the app's Referrer-Policy it is the site's own.
    ("no-referrer" made Chromium send "null", which refused every post: found by the browser test.)"""
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    assert page.headers["referrer-policy"] == "same-origin"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"username": "sam", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, headers={"Origin": "null"}).status_code == 403
    assert client.post("/login", data=form, headers={"Origin": "http://testserver"}).status_code == 303


def test_the_queue_pages_through_every_case_once(
    env: Setup, clients: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flagstone.web._app as web_app

    monkeypatch.setattr(web_app, "QUEUE_PAGE", 7)
    client = clients["auditor"]
    expected = [c.id for c in ops.queue(env.ov, env.users["aud"], state="", sort="age", limit=10_000)]
    seen: list[int] = []
    page = 1
    while True:
        html = client.get(f"/queue?state=&sort=age&page={page}").text
        seen += [int(i) for i in re.findall(r'href="/cases/(\d+)" class="case-link"', html)]
        assert f"{len(expected)} cases" in html
        if 'id="next"' not in html:
            break
        page += 1
    assert seen == expected and page == (len(expected) + 6) // 7


def test_an_idle_session_ends(env: Setup, app: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from flagstone.oversight.schema import sessions

    client = login(app, "sam")
    assert client.get("/queue").status_code == 200
    idle = timedelta(minutes=env.ov.config.security.idle_minutes)
    mine = sessions.c.token_hash == hashlib.sha256(client.cookies["flagstone_session"].encode()).hexdigest()
    with env.ov.engine.begin() as con:  # as if this session's last request were that long ago
        seen = con.execute(select(sessions.c.last_seen).where(mine)).scalar_one()
        con.execute(update(sessions).where(mine).values(last_seen=seen - idle - timedelta(seconds=5)))
    assert client.get("/queue").status_code == 303  # back to the log-in
