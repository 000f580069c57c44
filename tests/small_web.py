"""A small case review for web tests that need no scanned store: one user of each role (two
supervisors in team aml), a few cases written directly, and a clock the test moves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert

from flagstone.config import Cases, Config, Security
from flagstone.oversight.context import Oversight
from flagstone.oversight.grants import Grant
from flagstone.oversight.schema import case_events, cases, event_key, login_limits
from flagstone.oversight.users import User, approve_grant, create_user
from flagstone.web import create_web_app

PASSWORD = "correct horse battery"
PEOPLE = {
    "ana": ("analyst", "aml"),
    "sam": ("supervisor", "aml"),
    "sue": ("supervisor", "aml"),
    "aud": ("auditor", "compliance"),
    "adm": ("admin", "compliance"),
}
T0 = datetime(2024, 5, 1, 9, 0)
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "cache-control")


class Clock:
    """The time the app sees: starts now, moves only when told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Small:
    ov: Oversight
    users: dict[str, User]
    case_ids: list[int]
    clock: Clock
    app: Any


def small_web(db_url: str, tmp: Path, **security: Any) -> Iterator[Small]:
    """Yield the set-up; ``security`` overrides keys of the configuration's security section."""
    config = Config(cases=Cases(teams={"aml": ["aml."]}), security=Security(**security))
    ov = Oversight.open(tmp / "store.duckdb", db_url, config)
    clock = Clock(ov.clock())
    ov.clock = clock
    # The admin first (the bootstrap), who then approves the supervisors' grants, as a deployment does.
    made = {
        n: create_user(ov, "cli:test", n, PASSWORD, role, team)
        for n, (role, team) in sorted(PEOPLE.items(), key=lambda p: p[1][0] != "admin")
    }
    admin = made["adm"]
    assert isinstance(admin, User)
    people = {n: approve_grant(ov, admin, u.id) if isinstance(u, Grant) else u for n, u in made.items()}
    ids = []
    with ov.engine.begin() as con:
        for i in range(3):
            row = {
                "alert_id": f"{i:024d}", "team": "aml", "rule_id": "aml.structuring", "rule_version": 1,
                "severity": "high", "severity_rank": 2, "group_key": "p1", "reason": "three deposits",
                "values_json": '{"count": 3}', "first_ts": T0, "last_ts": T0, "detected_at": T0,
                "deadline": T0 + timedelta(days=30), "state": "open", "updated_at": T0,
            }  # fmt: skip
            case_id = int(con.execute(insert(cases).values(**row)).inserted_primary_key[0])  # type: ignore[index]
            ids.append(case_id)
            con.execute(
                insert(case_events).values(
                    case_id=case_id, event_key=event_key("bank", f"e{i}"), source="bank", event_id=f"e{i}", ts=T0,
                    kind="cash_deposit", actor="p1", amount=Decimal("9500.00"), currency="EUR",
                )
            )  # fmt: skip
    yield Small(ov, people, ids, clock, create_web_app(ov))
    ov.close()


def login_token(client: TestClient) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def try_login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/login", data={"username": username, "password": password, "csrf_token": login_token(client)})


def login(app: Any, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    r = try_login(client, username, password)
    assert r.status_code == 303, r.text
    return client


def page_csrf(client: TestClient, path: str = "/account") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)  # type: ignore[union-attr]


def forget_failures(ov: Oversight) -> None:
    with ov.engine.begin() as con:
        con.execute(delete(login_limits))
