"""The web UI never answers 5xx to what a client sends, on SQLite and PostgreSQL: ids and page
numbers no database holds are 404, malformed queries 422, both audited for a user with a session
and sent with the security headers; so is every other answer, an error of our own included
(a page without a traceback); and a hypothesis test sends random path, query and form values to
every route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from case_db import BACKENDS, fresh_db_url
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from small_web import SECURITY_HEADERS, Small, forget_failures, login, page_csrf, small_web
from sqlalchemy import select

from flagstone.audit.bounded import MAX_TARGET, bounded_text
from flagstone.oversight.schema import audit_entries, comments


@pytest.fixture(scope="module", params=BACKENDS)
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    tmp = tmp_path_factory.mktemp(f"hardening-{request.param}")
    urls = fresh_db_url(request.param, tmp)
    # Random log-ins must not lock out the address the other requests come from.
    yield from small_web(next(urls), tmp, address_lockout_attempts=10**9)
    for _ in urls:  # drop the PostgreSQL database
        pass


@pytest.fixture(scope="module")
def sue(small: Small) -> TestClient:
    return login(small.app, "sue")


def has_security_headers(r: Any) -> bool:
    return all(h in r.headers for h in SECURITY_HEADERS) and r.headers["x-frame-options"] == "DENY"


def refusals(small: Small, path: str) -> list[str]:
    with small.ov.engine.connect() as con:
        return list(
            con.execute(
                select(audit_entries.c.details).where(
                    audit_entries.c.action == "authorisation_failed", audit_entries.c.target == path
                )
            ).scalars()
        )


BAD_IDS = ["99999999999999999999999", str(2**31), str(2**63), "-1", "0", "abc", "1e3", "1.5", "%00", "1" * 5000]
CASE_ROUTES = [
    ("GET", "/cases/{}"),
    ("GET", "/cases/{}/report.xml"),
    ("POST", "/cases/{}/comment"),
    ("POST", "/cases/{}/reveal"),
    ("POST", "/cases/{}/approve"),
]


@pytest.mark.parametrize("method, route", CASE_ROUTES)
@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda b: b[:24])
def test_a_case_id_no_database_holds_is_404_audited_with_the_headers(
    small: Small, sue: TestClient, method: str, route: str, bad: str
) -> None:
    path = route.format(bad)
    form = {"csrf_token": page_csrf(sue), "body": "x", "pseudonym": "p1", "reason": "why"} if method == "POST" else None
    r = sue.request(method, path, data=form)
    assert r.status_code == 404, (path[:60], r.status_code, r.text[:300])
    assert has_security_headers(r) and "Traceback" not in r.text and "Not found" in r.text
    decoded = path.replace("%00", "\x00")
    target = bounded_text(decoded, MAX_TARGET)  # as the audit log keeps any target: NUL-free, cut short
    assert any("404" in d for d in refusals(small, target)), "not audited"


@pytest.mark.parametrize(
    "page, code",
    [
        (str(10**30), 404),
        (str(2**63), 404),
        ("2", 404),
        ("-1", 422),
        ("0", 422),
        ("abc", 422),
        ("1.5", 422),
        ("1" * 5000, 422),
    ],
    ids=lambda p: str(p)[:24],
)
def test_a_page_number_past_the_end_is_404_and_a_malformed_one_422(
    small: Small, sue: TestClient, page: str, code: int
) -> None:
    before = len(refusals(small, "/queue"))
    r = sue.get(f"/queue?page={page}")
    assert r.status_code == code, (page[:40], r.status_code, r.text[:300])
    assert has_security_headers(r) and "Traceback" not in r.text
    assert len(refusals(small, "/queue")) == before + 1
    assert sue.get("/queue?page=1").status_code == 200


def test_an_error_of_our_own_is_a_plain_500_page_with_the_headers_and_audited(
    small: Small, sue: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagstone.oversight import cases as case_ops

    def broken(*_args: Any) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(case_ops, "view_case", broken)
    r = sue.get(f"/cases/{small.case_ids[0]}")
    assert r.status_code == 500 and has_security_headers(r)
    assert "secret internals" not in r.text and "Traceback" not in r.text and "reference" in r.text
    with small.ov.engine.connect() as con:
        entry = con.execute(select(audit_entries).where(audit_entries.c.action == "request_failed")).all()[-1]
    assert entry.target == f"/cases/{small.case_ids[0]}" and "RuntimeError" in entry.details
    assert entry.details.split('"error":"')[1][:12] in r.text  # the page names the entry's reference


def test_unknown_routes_wrong_methods_and_large_bodies_are_pages_with_the_headers(sue: TestClient) -> None:
    for method, path, code in (("GET", "/nope", 404), ("DELETE", "/queue", 405), ("GET", "/static/../x", 404)):
        r = sue.request(method, path)
        assert r.status_code == code and has_security_headers(r), (method, path, r.status_code)
    big = {"csrf_token": page_csrf(sue), "body": "x" * 2_000_000}
    r = sue.post("/logout", data=big)
    assert r.status_code == 413 and has_security_headers(r) and "bytes at most" in r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for _ in range(40):
            yield b"body=" + b"y" * 65536 + b"&"

    headers = {"content-type": "application/x-www-form-urlencoded"}
    r = sue.post("/cases/1/comment", content=chunks(), headers=headers)
    assert r.status_code == 413 and has_security_headers(r)
    assert sue.get("/queue").status_code == 200  # still logged in, nothing else changed


def test_nul_and_long_values_in_queries_and_forms_are_taken_or_refused_never_500(small: Small) -> None:
    """PostgreSQL's text refuses NUL; the case database stores it all the same, so a query
    parameter with one simply matches nothing, and a comment with one reads back exactly."""
    client = login(small.app, "sam")
    token = page_csrf(client)
    for path in ("/queue?rule=%00", "/queue?state=%00", "/queue?severity=%00&sort=%00", "/queue?rule=" + "r" * 10_000):
        r = client.get(path)
        assert r.status_code == 200 and has_security_headers(r), (path[:40], r.status_code)
    case_id = small.case_ids[1]
    body = "before\x00after \uffff0 " + "é" * 20_000
    assert client.post(f"/cases/{case_id}/comment", data={"csrf_token": token, "body": body}).status_code == 303
    with small.ov.engine.connect() as con:
        assert con.execute(select(comments.c.body).where(comments.c.case_id == case_id)).scalar_one() == body.strip()
    for action, form in (("assign", {"assignee": "\x00"}), ("reveal", {"pseudonym": "\x00" * 300, "reason": "r"})):
        r = client.post(f"/cases/{case_id}/{action}", data={"csrf_token": token, **form})
        assert r.status_code == 409 and has_security_headers(r), (action, r.status_code)
    admin = login(small.app, "adm")
    r = admin.post("/admin/users/%00/unlock", data={"csrf_token": page_csrf(admin, "/admin/users")})
    assert r.status_code == 409 and "no such user" in r.text
    auditor = login(small.app, "aud")
    assert auditor.get("/audit?action=%00").status_code == 200


# -- every route, random values -------------------------------------------------------------------

NASTY = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "2", "abc", "1e3", "1.5", "NaN", "\x00", "null", "[]", "{}", "../.."]),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=3).map(lambda s: s * 3000),
)
ROLES = ["ana", "sam", "aud", "adm", None]


def routes(app: Any) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


@st.composite
def requests(draw: st.DrawFn, app: Any) -> tuple[str | None, str, str, dict[str, str], dict[str, str]]:
    route = draw(st.sampled_from(routes(app)))
    method = draw(st.sampled_from(sorted(route.methods)))
    path = route.path_format
    for name in route.param_convertors:
        path = path.replace("{" + name + "}", quote(draw(NASTY), safe=""))
    query = {p.alias: draw(NASTY) for p in route.dependant.query_params if draw(st.booleans())}
    form = {p.alias: draw(NASTY) for p in route.dependant.body_params if draw(st.booleans())}
    return draw(st.sampled_from(ROLES)), method, path, query, form


def test_every_route_answers_random_values_without_a_5xx(small: Small) -> None:
    clients: dict[str, TestClient] = {}

    def client_of(name: str | None) -> tuple[TestClient, str]:
        if name is None:
            return TestClient(small.app, follow_redirects=False, raise_server_exceptions=False), ""
        client = clients.get(name)
        if client is None or client.get("/account").status_code != 200:  # logged out by a random request
            forget_failures(small.ov)
            client = clients[name] = login(small.app, name)
        return client, page_csrf(client)

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(req=requests(small.app), with_token=st.booleans())
    def check(req: tuple[str | None, str, str, dict[str, str], dict[str, str]], with_token: bool) -> None:
        name, method, path, query, form = req
        assume(len(path) + sum(len(quote(v)) for v in query.values()) < 60_000)  # httpx's limit for a URL
        client, token = client_of(name)
        if with_token and method == "POST":
            form = {"csrf_token": token, **form}
        r = client.request(method, path, params=query or None, data=form or None)
        assert r.status_code < 500, (name, method, path[:80], r.status_code, r.text[:400])
        assert has_security_headers(r), (method, path[:80], r.status_code)
        assert "Traceback" not in r.text

    check()


@pytest.mark.parametrize(
    "cookie", [b"\xe9\xff", b"\x00", "é".encode() * 5000, b"a" * 100_000], ids=["latin1", "nul", "long-utf8", "long"]
)
def test_a_session_cookie_of_any_bytes_is_no_session_and_no_500(small: Small, cookie: bytes) -> None:
    """Before: a cookie byte outside ASCII failed hashing the token (500, no headers)."""
    client = TestClient(small.app, follow_redirects=False, raise_server_exceptions=False)
    r = client.get("/queue", headers={"cookie": b"flagstone_session=" + cookie})
    assert r.status_code == 303 and r.headers["location"] == "/login" and has_security_headers(r)
