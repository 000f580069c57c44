"""Log-in and sessions against an attacker, on SQLite and PostgreSQL: a locked real name and an
unknown name answer byte for byte alike and cost the same work (one Argon2 verification per
attempt, counted, not timed); failed log-ins are limited per client address and per name, with
429 and Retry-After, and the audit log grows by a bounded number of entries however many
attempts come; a password change ends the user's sessions; the idle time is measured exactly
(with a clock the test moves)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from small_web import PASSWORD, Small, login, page_csrf, small_web, try_login
from sqlalchemy import func, select

from flagstone.oversight.schema import audit_entries
from flagstone.oversight.users import set_password


@pytest.fixture
def small(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Small]:
    """The set-up; a test parametrises it indirectly with keys of the security section."""
    yield from small_web(db_url, tmp_path, **getattr(request, "param", {}))


def security(**keys: Any) -> Any:
    return pytest.mark.parametrize("small", [keys], indirect=True, ids=["config"])


@pytest.fixture
def fixed_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log-in form's random token made constant, so that two answers can be compared whole."""
    import flagstone.web._app as web_app

    monkeypatch.setattr(web_app, "new_login_csrf", lambda: "fixed-token")


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 verification, by the hash it checked."""
    seen: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(str(hash))
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return seen


def client_at(app: Any, address: str = "testclient") -> TestClient:
    return TestClient(app, follow_redirects=False, raise_server_exceptions=False, client=(address, 50000))


def answer(r: Any, name: str) -> tuple[int, list[tuple[str, str]], str]:
    """Status, headers and body, with the name the form echoes taken out."""
    return r.status_code, sorted(r.headers.items()), r.text.replace(f'value="{name}"', 'value="NAME"')


def entries(small: Small, action: str | None = None) -> int:
    query = select(func.count()).select_from(audit_entries)
    if action:
        query = query.where(audit_entries.c.action == action)
    with small.ov.engine.connect() as con:
        return int(con.execute(query).scalar_one())


@pytest.mark.usefixtures("fixed_token")
def test_a_locked_real_name_and_an_unknown_name_answer_byte_for_byte_alike(small: Small) -> None:
    """Before: after five wrong passwords the real name said "locked" (and answered 30 times
    faster, without hashing); an unknown name kept saying "wrong user name or password"."""
    attempts = small.ov.config.security.lockout_attempts
    answers: dict[str, list[Any]] = {"ana": [], "anx": []}  # a real name and an unknown one of its length
    for name in answers:
        client = client_at(small.app)
        for _ in range(attempts):
            answers[name].append(answer(try_login(client, name, "not the password"), name))
        answers[name].append(answer(try_login(client, name, PASSWORD), name))  # the right one, for ana
        answers[name].append(answer(try_login(client, name, "not the password"), name))
    assert answers["ana"] == answers["anx"]
    assert [a[0] for a in answers["ana"]] == [401] * attempts + [429, 429]
    assert dict(answers["ana"][-1][1])["retry-after"] == str(small.ov.config.security.lockout_minutes * 60)
    assert "locked" in answers["ana"][-1][2]


def test_every_attempt_past_the_address_check_verifies_exactly_one_hash(small: Small, verifications: list[str]) -> None:
    attempts = small.ov.config.security.lockout_attempts
    client = client_at(small.app)
    for name, password in [("ana", "wrong")] * attempts + [("ana", PASSWORD), ("ana", "wrong")]:
        before = len(verifications)
        try_login(client, name, password)
        assert len(verifications) == before + 1, (name, password)
    for _ in range(attempts + 2):
        before = len(verifications)
        try_login(client, "nobody", PASSWORD)
        assert len(verifications) == before + 1
    real_hashes = set(verifications[: attempts + 2])
    dummy_hashes = set(verifications[attempts + 2 :])
    assert len(real_hashes) == len(dummy_hashes) == 1 and real_hashes != dummy_hashes
    # the hashes cost the same: the same Argon2 parameters
    assert real_hashes.pop().split("$")[1:4] == dummy_hashes.pop().split("$")[1:4]


@security(address_lockout_attempts=5, address_lockout_minutes=10)
def test_failures_from_one_address_are_limited_and_audited_in_bounded_number(small: Small) -> None:
    """Before: 200 failed log-ins gave 200 signed audit entries, without limit."""
    client = client_at(small.app, "203.0.113.9")
    before = entries(small)
    codes = []
    for i in range(200):
        if i % 2:
            r = try_login(client, f"guess{i}", "wrong password")
        else:  # a form without its token counts as a failure of the address too
            r = client.post("/login", data={"username": f"guess{i}", "password": "x", "csrf_token": "forged"})
        codes.append(r.status_code)
    assert codes[:5] == [403, 401, 403, 401, 403] and set(codes[5:]) == {429}
    assert r.headers["retry-after"] == "600" and "from this address" in r.text
    assert entries(small) - before == 5 + 1  # the five failures, and one entry for the lock
    assert entries(small, "login_rate_limited") == 1
    assert try_login(client_at(small.app, "198.51.100.7"), "ana").status_code == 303  # another address
    assert try_login(client, "ana").status_code == 429  # even the right password, from the locked one
    small.clock.advance(minutes=10)
    assert try_login(client, "ana").status_code == 303


def test_the_name_limit_holds_for_names_nobody_has(small: Small) -> None:
    client = client_at(small.app)
    for _ in range(small.ov.config.security.lockout_attempts):
        assert try_login(client, "nobody", "x").status_code == 401
    r = try_login(client, "nobody", "x")
    assert r.status_code == 429 and "this user name" in r.text
    assert try_login(client, "ana").status_code == 303  # other names are not affected
    small.clock.advance(minutes=small.ov.config.security.lockout_minutes)
    assert try_login(client, "nobody", "x").status_code == 401


def test_a_megabyte_user_name_through_the_form_is_401_and_a_short_entry(small: Small) -> None:
    before = entries(small)
    r = try_login(client_at(small.app), "n" * 1_000_000, "x")
    assert r.status_code == 401 and len(r.text) < 10_000  # the name is not echoed back whole
    with small.ov.engine.connect() as con:
        entry = con.execute(select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(1)).one()
    assert entries(small) == before + 1 and entry.action == "login_failed"
    assert len(entry.actor) + len(entry.target) + len(entry.details) < 2000  # flagstone.audit.bounded


def test_a_password_set_by_an_admin_ends_the_users_sessions(small: Small) -> None:
    """Before: the sessions opened with the old password lived on."""
    first, second = login(small.app, "ana"), login(small.app, "ana")
    other = login(small.app, "sam")
    set_password(small.ov, "cli:test", "ana", "a brand new password")
    for client in (first, second):
        assert client.get("/queue").headers.get("location") == "/login"
    assert other.get("/queue").status_code == 200
    assert try_login(client_at(small.app), "ana", "a brand new password").status_code == 303


def test_a_password_changed_by_its_user_ends_their_other_sessions(small: Small) -> None:
    here, elsewhere = login(small.app, "ana"), login(small.app, "ana")
    old_cookie = here.cookies["flagstone_session"]
    form = {"csrf_token": page_csrf(here), "current_password": PASSWORD}
    r = here.post("/account/password", data={**form, "new_password": "x" * 12, "repeat_password": "y" * 12})
    assert r.status_code == 422 and "differ" in r.text
    r = here.post("/account/password", data={**form, "new_password": "short", "repeat_password": "short"})
    assert r.status_code == 422 and "at least 12" in r.text
    wrong = {**form, "current_password": "not it", "new_password": "n" * 12, "repeat_password": "n" * 12}
    assert here.post("/account/password", data=wrong).status_code == 403
    new = {**form, "new_password": "the new password", "repeat_password": "the new password"}
    r = here.post("/account/password", data=new)
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password"
    assert elsewhere.get("/queue").headers.get("location") == "/login"
    assert here.get("/queue").status_code == 200  # this browser has a new session
    replay = client_at(small.app)
    replay.cookies.set("flagstone_session", old_cookie)
    assert replay.get("/queue").headers.get("location") == "/login"
    assert try_login(client_at(small.app), "ana", "the new password").status_code == 303
    with small.ov.engine.connect() as con:
        details = list(con.execute(select(audit_entries.c.details).where(audit_entries.c.target == "ana")).scalars())
    assert any("password changed; 2 sessions ended" in d for d in details)
    assert any("wrong current password" in d for d in details)


@security(idle_minutes=1)
def test_a_session_used_every_40_seconds_stays_and_one_idle_a_minute_ends(small: Small) -> None:
    """Before: the last request was written at most once a minute, so a session used every 40 s
    looked idle for 80 s and ended under idle_minutes: 1."""
    client = login(small.app, "ana")
    for _ in range(30):  # twenty minutes of steady use
        small.clock.advance(seconds=40)
        assert client.get("/queue").status_code == 200
    small.clock.advance(seconds=59.999)
    assert client.get("/queue").status_code == 200
    small.clock.advance(seconds=60)
    assert client.get("/queue").headers.get("location") == "/login"
    small.clock.advance(seconds=1)  # and it stays ended
    assert client.get("/queue").headers.get("location") == "/login"


@security(session_hours=1, idle_minutes=30)
def test_a_session_ends_after_session_hours_however_busy(small: Small) -> None:
    client = login(small.app, "ana")
    for _ in range(5):
        small.clock.advance(minutes=11)
        assert client.get("/queue").status_code == 200
    small.clock.advance(minutes=6)
    assert client.get("/queue").headers.get("location") == "/login"


@security(address_lockout_attempts=8)
def test_attempts_on_a_locked_name_count_against_the_address(small: Small, verifications: list[str]) -> None:
    """Each costs a hash, so hammering a locked name must reach the address limit like any failure."""
    client = client_at(small.app)
    codes = [try_login(client, "ana", "wrong").status_code for _ in range(10)]
    assert codes == [401] * 5 + [429] * 5
    assert len(verifications) == 8  # the last two were refused by the address, before any hashing
    r = try_login(client, "sam")
    assert r.status_code == 429 and "from this address" in r.text


@pytest.mark.real_argon2
def test_passwords_are_hashed_with_argon2id_at_its_documented_cost(tmp_path: Path) -> None:
    """docs/oversight.md: Argon2id, 64 MiB, 3 passes, 4 lanes; the dummy hash that unknown and
    locked names verify against costs the same (the other tests make Argon2 cheap)."""
    from flagstone.oversight import users
    from flagstone.oversight.context import Oversight

    ov = Oversight.open(tmp_path / "s.duckdb")
    try:
        users.create_user(ov, "cli:test", "ana", PASSWORD, "analyst", "aml")
        with ov.engine.connect() as con:
            stored = con.execute(select(users.users.c.password_hash)).scalar_one()
    finally:
        ov.close()
    for digest in (stored, users._DUMMY):
        assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
