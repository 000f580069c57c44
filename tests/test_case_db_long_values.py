"""The case database takes whatever the event store takes, on SQLite and on a real PostgreSQL:
text of any length (the store's VARCHAR is unbounded), any Unicode, and NUL characters (which
PostgreSQL's text type refuses); the values read back are the values synced. People's entries
are bounded where they are typed (a user's team and display name), with an error naming the
field; a user name typed at the log-in reaches the audit log cut short, whatever its length."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from case_db import BACKENDS, fresh_db_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from flagstone.config import Cases, Config
from flagstone.errors import InputError
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import audit_entries, case_events, cases
from flagstone.oversight.sync import EVIDENCE_COLUMNS, sync_alerts
from flagstone.oversight.users import LoginError, authenticate, create_user
from flagstone.store import Store

T0 = datetime(2024, 5, 1, 9, 30)
TEXT_FIELDS = (
    "source",
    "event_id",
    "kind",
    "actor",
    "counterparty",
    "currency",
    "item",
    "category",
    "place",
    "channel",
)


def _random_text(n: int, seed: int) -> str:
    """Incompressible non-ASCII text: compressible repeats would hide PostgreSQL's index limits."""
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x100, 0x7000)) for _ in range(n))


# Every awkward kind of text: long (past every old VARCHAR size and PostgreSQL's 2.7 kB index
# entries), non-ASCII, NUL anywhere, and the escape PostgreSQL's NUL encoding uses, alone and in
# the very sequence that encodes NUL.
AWKWARD = {
    "long_ascii": "x" * 5000,
    "long_accented": "é" * 3000,
    "long_random_cjk": _random_text(3000, 1),
    "nul": "a\x00b\x00",
    "only_nul": "\x00",
    "escape_char": "\uffff",
    "escape_then_zero": "\uffff0",
    "escaped_escape": "\uffff\uffff\x00\uffff",
    "emoji_and_rtl": "💸 عربى עברית \u202e",
    "control": "\x01\x1f\x7f\n\r\t",
}


class StoreWriter:
    """A small store written directly: one event and one alert on it per call."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.n = 0
        self.store.con.execute("INSERT INTO scans VALUES (1, ?, ?, '[]', 0)", [T0, T0])

    def add(self, text: str, evidence: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """An alert whose every text field (rule id, group key, reason, values, and its event's
        fields) holds ``text``; returns its id and its event."""
        self.n += 1
        event: dict[str, Any] = {c: text + str(self.n) if c in ("source", "event_id") else text for c in TEXT_FIELDS}
        event.update(ts=T0 + timedelta(seconds=self.n), amount=Decimal("12345678901234.5678"), quantity=Decimal("1"))
        event.update(evidence or {})
        cols = [*event, "batch_id"]
        self.store.con.execute(
            f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [*event.values(), 1]
        )
        alert_id = f"alert{self.n:020d}"
        self.store.con.execute(
            "INSERT INTO alerts VALUES (?, 1, ?, 1, ?, ?, ?, ?, ?, ?, [?], [?], ?, ?)",
            [alert_id, "r." + text, "high", text, event["ts"], event["ts"], event["source"], event["event_id"],
             event["source"], event["event_id"], json.dumps({"v": text}), text],
        )  # fmt: skip
        return alert_id, event

    def close(self) -> None:
        self.store.close()


@pytest.fixture(params=BACKENDS, scope="module")
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Oversight, StoreWriter]]:
    tmp = tmp_path_factory.mktemp(f"long-{request.param}")
    urls = fresh_db_url(request.param, tmp)
    writer = StoreWriter(tmp / "s.duckdb")
    ov = Oversight.open(tmp / "s.duckdb", next(urls), Config(cases=Cases(teams={"long": ["r."]})))
    yield ov, writer
    ov.close()
    writer.close()
    for _ in urls:  # drop the PostgreSQL database
        pass


def synced_case(ov: Oversight, alert_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with ov.engine.connect() as con:
        case = con.execute(select(cases).where(cases.c.alert_id == alert_id)).one()._mapping
        evidence = [
            dict(r._mapping) for r in con.execute(select(case_events).where(case_events.c.case_id == case["id"]))
        ]
    return dict(case), evidence


def check_round_trip(ov: Oversight, writer: StoreWriter, text: str) -> None:
    alert_id, event = writer.add(text)
    result = sync_alerts(ov, writer.store)
    assert (result.cases, result.evidence) == (1, 1)
    case, evidence = synced_case(ov, alert_id)
    assert (case["rule_id"], case["group_key"], case["reason"]) == ("r." + text, text, text)
    assert json.loads(case["values_json"]) == {"v": text}
    assert [{c: e[c] for c in EVIDENCE_COLUMNS} for e in evidence] == [{c: event[c] for c in EVIDENCE_COLUMNS}]


@pytest.mark.parametrize("kind", sorted(AWKWARD))
def test_every_kind_of_text_syncs_and_reads_back_exactly(env: tuple[Oversight, StoreWriter], kind: str) -> None:
    check_round_trip(*env, AWKWARD[kind])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=400) | st.sampled_from(list(AWKWARD.values())))
def test_any_text_the_store_holds_syncs_and_reads_back_exactly(env: tuple[Oversight, StoreWriter], text: str) -> None:
    check_round_trip(*env, text)


def test_one_alert_with_long_values_does_not_stop_the_others(env: tuple[Oversight, StoreWriter]) -> None:
    """Before, one value past a VARCHAR size failed the whole sync on PostgreSQL: 0 cases."""
    ov, writer = env
    ids = [writer.add(t)[0] for t in ("plain", AWKWARD["long_random_cjk"], "plain too")]
    assert sync_alerts(ov, writer.store).cases == 3
    with ov.engine.connect() as con:
        assert con.execute(select(func.count()).where(cases.c.alert_id.in_(ids))).scalar_one() == 3


def test_a_growing_episode_adds_long_evidence_once(env: tuple[Oversight, StoreWriter]) -> None:
    """Evidence is keyed by a hash of (source, event id), so ids of any length are found again."""
    ov, writer = env
    alert_id, event = writer.add(AWKWARD["long_random_cjk"])
    sync_alerts(ov, writer.store)
    extra = {"source": event["source"], "event_id": _random_text(4000, 2), "ts": event["ts"] + timedelta(seconds=1)}
    writer.store.con.execute(
        "INSERT INTO events (source, event_id, ts, kind, batch_id) VALUES (?, ?, ?, 'x', 1)", list(extra.values())
    )
    writer.store.con.execute(
        "UPDATE alerts SET evidence_sources = list_append(evidence_sources, ?), evidence = list_append(evidence, ?) "
        "WHERE alert_id = ?",
        [extra["source"], extra["event_id"], alert_id],
    )
    assert sync_alerts(ov, writer.store).evidence == 1
    assert sync_alerts(ov, writer.store).evidence == 0
    _case, evidence = synced_case(ov, alert_id)
    assert sorted(e["event_id"] for e in evidence) == sorted([event["event_id"], extra["event_id"]])


@pytest.fixture
def ov(db_url: str, tmp_path: Path) -> Iterator[Oversight]:
    o = Oversight.open(tmp_path / "s.duckdb", db_url, Config())
    yield o
    o.close()


def test_a_user_name_of_a_megabyte_fails_to_log_in_and_is_audited_cut_short(ov: Oversight) -> None:
    """Before: 500 on PostgreSQL (the name did not fit the audit log's actor column), unaudited;
    on SQLite, a 2 MB audit entry (the name as actor and as target)."""
    name = "ü" * 1_000_000
    with pytest.raises(LoginError, match="wrong user name or password"):
        authenticate(ov, name, "a password of some length")
    with ov.engine.connect() as con:
        entry = con.execute(select(audit_entries).where(audit_entries.c.action == "login_failed")).one()
    assert len(entry.actor) + len(entry.target) + len(entry.details) < 2000  # flagstone.audit.bounded
    assert entry.target.startswith("ü" * 200) and "1,000,000 characters" in entry.target


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("team", "t" * 201, "a team is 1-200 printable characters"),
        ("team", "bad\x00team", "a team is 1-200 printable characters"),
        ("display_name", "D" * 5000, "a display name is 1-200 printable characters"),
        ("username", "u" * 65, "a user name is 1-64"),
    ],
)
def test_what_an_admin_types_for_a_user_is_bounded_with_a_clear_error(
    ov: Oversight, field: str, value: str, message: str
) -> None:
    args = {"username": "carla", "team": "aml", "display_name": "Carla"} | {field: value}
    with pytest.raises(InputError, match=message) as caught:
        create_user(
            ov, "cli:test", args["username"], "correct horse battery", "analyst", args["team"], args["display_name"]
        )
    assert caught.value.field == field
    args["username"] = "carla"
    args[field] = "ok" if field != "username" else "carla"
    create_user(
        ov, "cli:test", args["username"], "correct horse battery", "analyst", args["team"], args["display_name"]
    )


def test_names_up_to_the_bounds_are_kept_exactly(ov: Oversight) -> None:
    team, display = "Ŧ" * 200, "名" * 200
    user = create_user(ov, "cli:test", "u" * 64, "correct horse battery", "analyst", team, display)
    assert authenticate(ov, "u" * 64, "correct horse battery") == user
    assert (user.team, user.display_name) == (team, display)


# -- a database made by the Flagstone before ------------------------------------------------------


def test_an_older_case_database_is_upgraded_when_it_opens_and_keeps_everything(db_url: str, tmp_path: Path) -> None:
    """Made with the old tables (VARCHAR sizes, evidence keyed by source and event id, lock-outs
    in the users table), filled, then opened: upgraded in place, audited, nothing lost, and long
    values sync from then on. A second opening changes nothing."""
    import old_case_schema as old
    from argon2 import PasswordHasher
    from sqlalchemy import create_engine, insert, inspect

    from flagstone.audit import AuditLog, Signer, audit_key_path, verify
    from flagstone.audit.events import LoggedIn
    from flagstone.oversight.schema import event_key
    from flagstone.oversight.users import LoginThrottled, list_users

    store = tmp_path / "s.duckdb"
    engine = create_engine(db_url)
    old.metadata.create_all(engine)
    now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as the case database keeps times
    pw = PasswordHasher().hash("correct horse battery")
    evidence = [
        {"source": "bank", "event_id": f"e{i}", "ts": T0, "kind": "payment", "actor": "p1", "amount": Decimal(a)}
        for i, a in enumerate(["1234.5000", "99999999999.9999"])
    ]
    with engine.begin() as con:
        con.execute(insert(old.audit_head).values(id=1, size=0, frontier="[]"))
        for name in ("ana", "bob"):
            con.execute(
                insert(old.users).values(
                    username=name, display_name=name, role="analyst", team="aml", password_hash=pw,
                    failed_logins=0, locked_until=now + timedelta(minutes=10) if name == "ana" else None,
                    active=True, created_at=now,
                )
            )  # fmt: skip
        case_id = con.execute(
            insert(old.cases).values(
                alert_id="a" * 24, team="aml", rule_id="aml.x", rule_version=1, severity="high",
                severity_rank=2, group_key="p1", reason="r", values_json="{}", first_ts=T0, last_ts=T0,
                detected_at=T0, deadline=T0, state="open", updated_at=T0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        con.execute(insert(old.case_events), [{"case_id": case_id, **e} for e in evidence])
    signer = Signer.create(audit_key_path(store))  # as an older Flagstone made it
    AuditLog(engine, signer).record("ana", LoggedIn("ana"))
    engine.dispose()

    ov = Oversight.open(store, db_url, Config(cases=Cases(teams={"aml": ["r."]})))
    try:
        with ov.engine.connect() as con:
            rows = con.execute(select(case_events).order_by(case_events.c.event_id)).all()
            upgrades = (
                con.execute(select(audit_entries.c.details).where(audit_entries.c.action == "case_database_upgraded"))
                .scalars()
                .all()
            )
        assert [(r.event_id, r.amount, r.event_key) for r in rows] == [
            (e["event_id"], e["amount"], event_key(e["source"], e["event_id"])) for e in evidence
        ]
        assert (
            len(upgrades) == 1 and "case_events keyed by event_key" in upgrades[0] and "1 current locks" in upgrades[0]
        )
        columns = {c["name"]: c["type"] for c in inspect(ov.engine).get_columns("cases")}
        if ov.engine.dialect.name == "postgresql":
            assert "widened" in upgrades[0] and getattr(columns["rule_id"], "length", 0) is None
        assert "failed_logins" not in {c["name"] for c in inspect(ov.engine).get_columns("users")}
        with pytest.raises(LoginThrottled):  # the lock made before the upgrade still holds
            authenticate(ov, "ana", "correct horse battery")
        assert authenticate(ov, "bob", "correct horse battery").username == "bob"
        assert [u["locked"] for u in list_users(ov)] == [True, False]
        writer = StoreWriter(tmp_path / "s.duckdb")
        check_round_trip(ov, writer, AWKWARD["long_random_cjk"] + "\x00")
        writer.close()
        assert verify(ov.engine, signer.public).ok
    finally:
        ov.close()
    again = Oversight.open(store, db_url, Config())
    with again.engine.connect() as con:
        n = con.execute(select(func.count()).where(audit_entries.c.action == "case_database_upgraded")).scalar_one()
    again.close()
    assert n == 1
