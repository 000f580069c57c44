"""Oversight on the command line: `audit verify` against a tampered log, `users`, `retention run`
with legal hold, and rules refused for reading protected fields (scan and serve), each on a private
copy of a scanned demo store with its case database in the default place beside it."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from oversight_data import PASSWORD, approve, build_scanned_store, copy_store, set_up
from typer.testing import CliRunner, Result

from flagstone.audit.log import checkpoint_bytes, entry_bytes
from flagstone.audit.merkle import Frontier, leaf_hash
from flagstone.audit.signing import key_id
from flagstone.cli import app
from flagstone.oversight import cases as ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.users import LoginError, authenticate

ENV = ("FLAGSTONE_DB", "FLAGSTONE_CONFIG", "FLAGSTONE_STORE", "FLAGSTONE_AUDIT_KEY_FILE")
PSEUDONYM = re.compile(r"p_[0-9a-f]{20}")  # what ingest makes of an identifier (written out, not imported)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No deployment settings leak in, and no ./flagstone.yaml is found by accident."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scanned_store(tmp_path_factory.mktemp("scanned"))


@pytest.fixture
def store(scanned: Path, tmp_path: Path) -> Path:
    return copy_store(scanned, tmp_path / "store").resolve()


def case_db(store: Path) -> Path:
    """The default case database: SQLite beside the store."""
    return Path(f"{store}.cases.sqlite")


@pytest.fixture
def logged(store: Path) -> Path:
    """The store with an audit log: users created and cases synced (by the library, not the CLI)."""
    set_up(store, f"sqlite:///{case_db(store)}").ov.close()
    return store


def run(args: Sequence[str], code: int, input: str | None = None) -> Result:
    """Invoke ``flagstone ARGS`` in-process; the exit code must be ``code`` and not come from a crash."""
    result = CliRunner().invoke(app, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"flagstone {' '.join(args)} crashed: {result.output}") from result.exception
    assert result.exit_code == code, f"flagstone {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result


def sql(db: Path, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read or write the case database directly, as someone with file access could."""
    with closing(sqlite3.connect(db)) as con:
        rows = con.execute(query, params).fetchall()
        con.commit()
    return rows


def size(db: Path) -> int:
    return int(sql(db, "SELECT count(*) FROM audit_entries")[0][0])


def copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite file (WAL included), or a restore over one."""
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def verify_args(store: Path, *more: str) -> list[str]:
    return ["audit", "verify", "--store", str(store), *more]


# -- 1. audit verify ------------------------------------------------------------------------------


def test_verify_passes_on_an_untouched_log_and_is_itself_audited(logged: Path) -> None:
    db = case_db(logged)
    n = size(db)
    assert n >= 8 + 25  # eight users and a case per alert
    result = run(verify_args(logged), 0)
    assert f"audit log OK: {n} entries, {n} signed checkpoints verified" in result.output
    # The check is appended after itself, and the next check covers it.
    assert sql(db, "SELECT seq, action FROM audit_entries ORDER BY seq DESC LIMIT 1") == [(n + 1, "audit_verified")]
    assert f"audit log OK: {n + 1} entries" in run(verify_args(logged), 0).output


def _failed(store: Path, *more: str) -> str:
    out = run(verify_args(store, *more), 1).output
    assert "audit log FAILED" in out and "audit log OK" not in out
    return out


def test_one_changed_byte_names_the_entry(logged: Path) -> None:
    db = case_db(logged)
    seq = size(db) // 2
    [(details, action)] = sql(db, "SELECT details, action FROM audit_entries WHERE seq = ?", [seq])
    i = next(i for i, ch in enumerate(details) if ch.isalnum())
    changed = details[:i] + chr(ord(details[i]) ^ 1) + details[i + 1 :]
    assert len(changed.encode()) == len(details.encode()) and changed != details
    sql(db, "UPDATE audit_entries SET details = ? WHERE seq = ?", [changed, seq])
    out = _failed(logged)
    assert f"entry {seq} was changed" in out
    assert f'"seq": {seq}' in out and action in out  # the first bad entry, described
    assert f"after {seq - 1} good entries" in out


def test_a_changed_entry_with_a_matching_hash_breaks_its_signed_checkpoint(logged: Path) -> None:
    db = case_db(logged)
    seq = size(db) // 2
    [(ts, actor, action, target)] = sql(db, "SELECT ts, actor, action, target FROM audit_entries WHERE seq = ?", [seq])
    forged = json.dumps({"forged": True})
    digest = leaf_hash(entry_bytes(seq, ts, actor, action, target, forged)).hex()
    sql(db, "UPDATE audit_entries SET details = ?, entry_hash = ? WHERE seq = ?", [forged, digest, seq])
    out = _failed(logged)
    assert f"checkpoint at size {seq} does not match the log" in out and f'"seq": {seq}' in out


def test_a_deleted_middle_entry_is_named(logged: Path) -> None:
    db = case_db(logged)
    seq = size(db) // 2
    sql(db, "DELETE FROM audit_entries WHERE seq = ?", [seq])
    out = _failed(logged)
    assert f"entry {seq} is missing" in out and f"found sequence number {seq + 1}" in out
    assert f'"seq": {seq}' in out


def test_two_swapped_entries_fail(logged: Path) -> None:
    db = case_db(logged)
    a = size(db) // 2
    b = a + 3
    sql(db, "UPDATE audit_entries SET seq = -1 WHERE seq = ?", [a])
    sql(db, "UPDATE audit_entries SET seq = ? WHERE seq = ?", [a, b])
    sql(db, "UPDATE audit_entries SET seq = ? WHERE seq = -1", [b])
    assert size(db) == sql(db, "SELECT max(seq) FROM audit_entries")[0][0]  # no gap: only the order changed
    out = _failed(logged)
    assert f"entry {a} was changed" in out and f'"seq": {a}' in out


def test_the_last_entries_cut_off_are_reported_as_truncation(logged: Path) -> None:
    db = case_db(logged)
    n = size(db)
    sql(db, "DELETE FROM audit_entries WHERE seq > ?", [n - 3])
    out = _failed(logged)
    assert "truncated" in out and f"signed for {n} entries, only {n - 3} are present" in out


def test_a_witness_catches_a_log_rolled_back_with_its_checkpoints(logged: Path, tmp_path: Path) -> None:
    db = case_db(logged)
    older, early, late = tmp_path / "older.sqlite", tmp_path / "early.json", tmp_path / "late.json"
    run(["audit", "checkpoint", "--store", str(logged), "--out", str(early)], 0)
    copy_db(db, older)  # the log as it is now: every entry and checkpoint in it is genuine
    head = Path(f"{logged}.audit-key.head")
    older_head = head.read_bytes()
    n0 = size(db)
    for name in ("wanda", "walt", "wes"):
        run(["users", "add", name, "--role", "analyst", "--password-stdin", "--store", str(logged)], 0, PASSWORD + "\n")
    run(["audit", "checkpoint", "--store", str(logged), "--out", str(late)], 0)
    n1 = size(db)
    assert json.loads(early.read_text())["size"] == n0 and json.loads(late.read_text())["size"] == n1 == n0 + 3
    run(verify_args(logged, "--witness", str(early)), 0)  # appended to since: consistent
    run(verify_args(logged, "--witness", str(late)), 0)

    copy_db(older, db)  # roll back: the newer entries go, with their checkpoints and the head
    assert size(db) == n0
    # The older log is itself complete and correctly signed, but the head file beside the key
    # still holds the newest checkpoint the key signed.
    out = _failed(logged)
    assert f"log truncated: the last checkpoint in {head} covers" in out and f"only {n0} are present" in out
    # Someone who can also write the key's folder rolls the head file back too: only a witness
    # kept elsewhere can tell then.
    head.write_bytes(older_head)
    assert "audit log OK" in run(verify_args(logged), 0).output
    out = _failed(logged, "--witness", str(late))
    assert "truncated" in out and f"witness checkpoint covers {n1} entries" in out
    run(verify_args(logged, "--witness", str(early)), 0)  # the older witness still agrees


def _other_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    private = Ed25519PrivateKey.generate()
    pub = tmp_path / "other.pub"
    pub.write_text(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex() + "\n")
    return private, pub


def test_checkpoints_signed_with_another_key_fail(logged: Path, tmp_path: Path) -> None:
    other, other_pub = _other_key(tmp_path)
    assert "signature" in _failed(logged, "--public-key", str(other_pub))
    run(verify_args(logged, "--public-key", f"{logged}.audit-key.pub"), 0)  # the genuine key, given explicitly

    # A witness whose statement someone else signed (e.g. to vouch for a forged root).
    witness = tmp_path / "w.json"
    run(["audit", "checkpoint", "--store", str(logged), "--out", str(witness)], 0)
    cp = json.loads(witness.read_text())
    cp["root"] = "0" * 64
    cp["signature"] = other.sign(checkpoint_bytes(cp["size"], cp["root"], cp["ts"])).hex()
    cp["key_id"] = key_id(other.public_key())
    witness.write_text(json.dumps(cp))
    out = _failed(logged, "--witness", str(witness))
    assert f"witness checkpoint (size {cp['size']}): signature does not verify" in out


def test_a_log_rewritten_and_re_signed_with_another_key_fails(logged: Path, tmp_path: Path) -> None:
    """Someone with database access but not the key rewrites an entry and rebuilds every hash,
    checkpoint and the head consistently: only the signatures give it away."""
    other, _ = _other_key(tmp_path)
    db = case_db(logged)
    seq_changed = size(db) // 2
    rows = sql(db, "SELECT seq, ts, actor, action, target, details FROM audit_entries ORDER BY seq")
    frontier = Frontier()
    with closing(sqlite3.connect(db)) as con:
        for seq, ts, actor, action, target, details in rows:
            if seq == seq_changed:
                details = json.dumps({"forged": True})
            digest = leaf_hash(entry_bytes(seq, ts, actor, action, target, details))
            frontier.append(digest)
            if seq < seq_changed:
                continue
            root = frontier.root().hex()
            con.execute(
                "UPDATE audit_entries SET details = ?, entry_hash = ? WHERE seq = ?", [details, digest.hex(), seq]
            )
            con.execute(
                "UPDATE audit_checkpoints SET root = ?, key_id = ?, signature = ? WHERE size = ?",
                [root, key_id(other.public_key()), other.sign(checkpoint_bytes(seq, root, ts)).hex(), seq],
            )
        con.execute(
            "UPDATE audit_head SET frontier = ? WHERE id = 1", [json.dumps([[n, h.hex()] for n, h in frontier.nodes])]
        )
        con.commit()
    out = _failed(logged)
    assert f"checkpoint at size {seq_changed}: signature does not verify" in out


# -- 2. users -------------------------------------------------------------------------------------


def _user_row(store: Path, username: str) -> list[str] | None:
    """The cells of ``username``'s row in `users list`."""
    out = run(["users", "list", "--store", str(store)], 0).output
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line) if c.strip()]
        if cells and cells[0] == username:
            return cells
    return None


def _login(store: Path, username: str, password: str) -> str:
    ov = Oversight.open(store)
    try:
        return authenticate(ov, username, password).username
    finally:
        ov.close()


def _add(store: Path, name: str, role: str, password: str, code: int, team: str = "aml") -> Result:
    args = ["users", "add", name, "--role", role, "--team", team, "--password-stdin", "--store", str(store)]
    return run(args, code, password + "\n")


def test_users_add_and_list(store: Path) -> None:
    # (a supervisor waits for a second admin: tests/test_grants.py)
    result = _add(store, "carla", "analyst", PASSWORD, 0, team="precursors")
    assert "user carla added (analyst, team precursors)" in result.output
    assert PASSWORD not in result.output
    assert _user_row(store, "carla") == ["carla", "carla", "analyst", "precursors", "active"]
    assert _login(store, "carla", PASSWORD) == "carla"  # the password from stdin is the one stored
    entries = sql(case_db(store), "SELECT action, target, details FROM audit_entries WHERE action = 'user_changed'")
    assert [(a, t) for a, t, _ in entries] == [("user_changed", "carla")]
    assert '"change":"created"' in entries[0][2] and PASSWORD not in entries[0][2]
    assert "already exists" in _add(store, "carla", "analyst", PASSWORD, 2).output


def test_users_add_refuses_an_unknown_role_and_a_short_password(store: Path) -> None:
    out = _add(store, "dora", "boss", PASSWORD, 2).output
    assert "unknown role 'boss'" in out and "analyst, supervisor, auditor, admin" in out
    out = _add(store, "dora", "analyst", "x" * 11, 2).output
    assert "at least 12 characters" in out
    assert _user_row(store, "dora") is None  # neither attempt created the user
    _add(store, "dora", "analyst", "x" * 12, 0)  # the boundary itself is accepted
    assert _user_row(store, "dora") is not None


def test_disable_stops_log_in_and_enable_restores_it(store: Path) -> None:
    _add(store, "eve", "analyst", PASSWORD, 0)
    assert "user eve disabled" in run(["users", "disable", "eve", "--store", str(store)], 0).output
    assert _user_row(store, "eve") == ["eve", "eve", "analyst", "aml", "disabled"]
    with pytest.raises(LoginError, match="disabled"):
        _login(store, "eve", PASSWORD)
    run(["users", "enable", "eve", "--store", str(store)], 0)
    assert _login(store, "eve", PASSWORD) == "eve"
    assert "no such user 'nobody'" in run(["users", "disable", "nobody", "--store", str(store)], 2).output


def test_unlock_after_lock_out_lets_the_user_in(store: Path) -> None:
    _add(store, "finn", "analyst", PASSWORD, 0)
    for _ in range(5):  # the default lockout_attempts
        with pytest.raises(LoginError, match="wrong user name or password"):
            _login(store, "finn", "not the password")
    with pytest.raises(LoginError, match="locked"):
        _login(store, "finn", PASSWORD)
    assert _user_row(store, "finn") == ["finn", "finn", "analyst", "aml", "locked"]
    assert "user finn unlocked" in run(["users", "unlock", "finn", "--store", str(store)], 0).output
    assert _user_row(store, "finn") == ["finn", "finn", "analyst", "aml", "active"]
    assert _login(store, "finn", PASSWORD) == "finn"


# -- 3. retention ---------------------------------------------------------------------------------


def _store_state(store: Path) -> dict[str, Any]:
    with closing(duckdb.connect(str(store), read_only=True)) as con:
        return {
            "events": {(s, e) for s, e in con.execute("SELECT source, event_id FROM events").fetchall()},
            "identities": {p for (p,) in con.execute("SELECT pseudonym FROM identities").fetchall()},
            "alerts": {a for (a,) in con.execute("SELECT alert_id FROM alerts").fetchall()},
        }


def _summary(verb: str, cutoff: datetime, by_source: Counter[str], held: int, identities: int) -> list[str]:
    return [
        f"cut-off {cutoff:%Y-%m-%d %H:%M:%S} UTC: {verb} {sum(by_source.values()):,} events",
        *(f"  {source}: {n:,}" for source, n in sorted(by_source.items())),
        f"kept under legal hold (open cases, filed reports): {held:,} events",
        f"also {verb}: 0 quarantined records, 1 alerts, 0 service decisions, {identities:,} identities, "
        "1 closed cases past their hold",
    ]


def test_retention_purges_old_events_except_those_cases_hold(store: Path) -> None:
    db = case_db(store)
    with closing(duckdb.connect(str(store), read_only=True)) as con:
        events = {
            (s, e): (ts, {actor, counterparty, *PSEUDONYM.findall(attrs or "")} - {None})
            for s, e, ts, actor, counterparty, attrs in con.execute(
                "SELECT source, event_id, ts, actor, counterparty, CAST(attrs AS VARCHAR) FROM events"
            ).fetchall()
        }
        evidence = {
            a: set(zip(sources, ids, strict=True))
            for a, sources, ids in con.execute("SELECT alert_id, evidence_sources, evidence FROM alerts").fetchall()
        }
        entities = {e for (e,) in con.execute("SELECT entity FROM entities").fetchall()}
        median = con.execute("SELECT quantile_disc(ts, 0.5) FROM events").fetchone()[0]  # type: ignore[index]
    before = _store_state(store)
    days = 30
    cutoff = median.replace(microsecond=0)  # about half the events are older
    as_of = cutoff + timedelta(days=days)

    s = set_up(store, f"sqlite:///{db}")
    try:
        old_aml = sql(
            db, "SELECT id, alert_id FROM cases WHERE team = 'aml' AND last_ts < ? ORDER BY last_ts, id", [str(cutoff)]
        )
        assert len(old_aml) >= 2
        (dismissed, dismissed_alert), (filed, filed_alert) = old_aml[0], old_aml[1]
        ops.act(s.ov, s.users["ana"], dismissed, "dismiss", "known customer, nothing unusual")
        ops.act(s.ov, s.users["sam"], filed, "propose", "structured deposits")
        approve(s, "sue", filed)
        ops.act(s.ov, s.users["sam"], filed, "file")
    finally:
        s.ov.close()
    states = dict(sql(db, "SELECT id, state FROM cases"))
    assert states[dismissed] == "dismissed" and states[filed] == "filed"
    assert sum(st == "open" for st in states.values()) == len(states) - 2 == len(before["alerts"]) - 2
    filed_evidence = sql(db, "SELECT count(*) FROM case_events WHERE case_id = ?", [filed])[0][0]

    # The oracle: old events, minus the evidence of every alert whose case is not dismissed.
    old = {k for k, (ts, _) in events.items() if ts < cutoff}
    hold = set().union(*(ev for a, ev in evidence.items() if a != dismissed_alert))
    purged, held = old - hold, old & hold
    by_source = Counter(src for src, _ in purged)
    remaining = set(events) - purged
    referenced = set().union(*(events[k][1] for k in remaining)) | entities
    gone_identities = before["identities"] - referenced
    # The scenario reaches every branch: some events go, some are held, some of them by the filed
    # report alone, the dismissed case's evidence is not held, and some identities lose all references.
    assert purged and held and evidence[dismissed_alert] & purged and gone_identities
    others = set().union(*(ev for a, ev in evidence.items() if a not in (dismissed_alert, filed_alert)))
    assert (evidence[filed_alert] & old) - others
    assert len(by_source) >= 2

    args = ["retention", "run", "--store", str(store), "--days", str(days), "--as-of", as_of.isoformat()]
    dry = run([*args, "--dry-run"], 0).output.splitlines()
    assert dry[:-1] == _summary("would purge", cutoff, by_source, len(held), 0)[:-1]
    assert dry[-1].endswith("1 closed cases past their hold") and "1 alerts" in dry[-1]
    assert _store_state(store) == before  # a dry run changes nothing
    assert dict(sql(db, "SELECT id, state FROM cases")) == states
    assert sql(db, "SELECT count(*) FROM audit_entries WHERE action = 'retention_purge'") == [(0,)]

    out = run(args, 0).output.splitlines()
    assert out == _summary("purged", cutoff, by_source, len(held), len(gone_identities))
    after = _store_state(store)
    assert after["events"] == remaining
    assert held <= after["events"]  # legal hold
    assert after["identities"] == before["identities"] & referenced
    assert after["alerts"] == before["alerts"] - {dismissed_alert}

    # The case database: the old dismissed case is gone with its evidence; the filed one is whole.
    assert sql(db, "SELECT count(*) FROM cases WHERE id = ?", [dismissed]) == [(0,)]
    assert sql(db, "SELECT count(*) FROM case_events WHERE case_id = ?", [dismissed]) == [(0,)]
    assert sql(db, "SELECT state FROM cases WHERE id = ?", [filed]) == [("filed",)]
    assert sql(db, "SELECT count(*) FROM case_events WHERE case_id = ?", [filed]) == [(filed_evidence,)]
    parties = {p for row in sql(db, "SELECT actor, counterparty FROM case_events") for p in row if p}
    assert {p for (p,) in sql(db, "SELECT pseudonym FROM vault")} == parties

    [(target, details)] = sql(db, "SELECT target, details FROM audit_entries WHERE action = 'retention_purge'")
    assert target == str(store)
    assert {k: json.loads(details)[k] for k in ("cutoff", "events", "held", "identities", "cases")} == {
        "cutoff": cutoff.isoformat(),
        "events": len(purged),
        "held": len(held),
        "identities": len(gone_identities),
        "cases": 1,
    }
    assert "audit log OK" in run(verify_args(store), 0).output

    again = run(args, 0).output  # nothing more is old and unheld
    assert "purged 0 events" in again and f"legal hold (open cases, filed reports): {len(held):,} events" in again


def test_a_dry_run_counts_the_identities_it_would_purge(store: Path) -> None:
    args = ["retention", "run", "--store", str(store), "--days", "1", "--as-of", "2100-01-01T00:00:00"]
    dry = run([*args, "--dry-run"], 0).output
    real = run(args, 0).output
    n = re.search(r"purged: .*?([\d,]+) identities", real)
    assert n is not None and n.group(1) != "0"
    assert f"{n.group(1)} identities" in dry


# -- 4. protected fields --------------------------------------------------------------------------

RULE = """\
id: t.{name}
version: 1
title: payments tested on one field
severity: low
kind: condition
match: kind = 'payment'
group_by: [actor]
condition: {field} = 'XX'
reason: "payment in group {{group}}"
"""
CONDITION_LINE = 8


def _rule(tmp_path: Path, field: str) -> Path:
    name = field.replace(".", "_")
    path = tmp_path / f"{name}.yaml"
    path.write_text(RULE.format(name=name, field=field))
    assert path.read_text().splitlines()[CONDITION_LINE - 1].startswith("condition:")
    return path


def _scans(store: Path) -> int:
    with closing(duckdb.connect(str(store), read_only=True)) as con:
        return int(con.execute("SELECT count(*) FROM scans").fetchone()[0])  # type: ignore[index]


def _error_line(output: str) -> str:
    [line] = [x for x in output.splitlines() if x.startswith("error:")]
    return line


def test_a_configured_protected_field_is_refused_by_scan_and_serve(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = _rule(tmp_path, "actor.country")
    scans = _scans(store)
    run(["scan", "--rules", str(rule), "--store", str(store)], 0)  # allowed without configuration
    assert _scans(store) == scans + 1

    config = tmp_path / "deploy.yaml"
    config.write_text("protected_fields: [country]\n")
    monkeypatch.setenv("FLAGSTONE_CONFIG", str(config))
    error = _error_line(run(["scan", "--rules", str(rule), "--store", str(store)], 2).output)
    assert error.startswith(f"error: {rule}:{CONDITION_LINE}, field 'actor.country'")
    assert "protected ('country')" in error
    assert _scans(store) == scans + 1  # nothing scanned

    # serve refuses the same rule with the same message, before it opens the store or listens.
    served = subprocess.run(
        [str(Path(sys.executable).parent / "flagstone"), "serve", "--rules", str(rule), "--source", "s",
         "--store", str(store), "--port", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ENV} | {"FLAGSTONE_CONFIG": str(config)},
    )  # fmt: skip
    assert served.returncode == 2, served.stderr
    assert _error_line(served.stderr) == error
    assert "listening" not in served.stderr and "rebuilding" not in served.stderr


@pytest.mark.parametrize("attr", ["religion", "ethnic_origin", "health_status", "trade_union"])
def test_special_categories_are_refused_without_configuration(store: Path, tmp_path: Path, attr: str) -> None:
    assert not (tmp_path / "flagstone.yaml").exists()
    rule = _rule(tmp_path, f"attrs.{attr}")
    error = _error_line(run(["scan", "--rules", str(rule), "--store", str(store)], 2).output)
    assert error.startswith(f"error: {rule}:{CONDITION_LINE}, field 'condition'")
    assert f"attrs.{attr}" in error and "protected" in error
    control = _rule(tmp_path, "attrs.reference")  # an ordinary attribute scans
    run(["scan", "--rules", str(control), "--store", str(store)], 0)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("protected_fields: []\nsecurity:\n  lockout_attempts: 3\nbogus: 1\n", 4, "bogus"),
        ("protected_fields: []\nretention:\n  days: -1\n", 3, "retention.days"),
    ],
)
@pytest.mark.parametrize("command", ["scan", "retention"])
def test_a_bad_configuration_names_file_line_and_field(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, field: str, command: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    before = _store_state(store)
    if command == "scan":
        monkeypatch.setenv("FLAGSTONE_CONFIG", str(config))
        args = ["scan", "--rules", str(_rule(tmp_path, "channel")), "--store", str(store)]
    else:
        args = ["retention", "run", "--store", str(store), "--config", str(config), "--as-of", "2100-01-01T00:00:00"]
    error = _error_line(run(args, 2).output)
    assert error.startswith(f"error: {config}:{line}, field '{field}'")
    assert _store_state(store) == before
