"""Identities never rest in clear, and nothing Flagstone keeps is readable by other users.

Checked the way an intruder would look: by the modes of the files beside the store and by the
bytes in them (the DuckDB file after a checkpoint, and its write-ahead log before one). Control
values that are meant to be stored in clear are searched for too, so that a search finding
nothing proves the identifiers are absent, not that the bytes are unreadable.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.ingest import Pseudonymiser, ingest_file
from flagstone.ingest._quarantine import open_raw
from flagstone.oversight.context import Oversight
from flagstone.oversight.grants import Grant
from flagstone.oversight.users import User, approve_grant, create_user
from flagstone.owner_only import beside_store
from flagstone.store import Store

KEY = "22" * 32
PASSWORD = "correct horse battery"
# Identifiers of quarantined records, each only ever in an identifier field or the raw text.
SECRETS = [
    "SECRET-ACCT-DE89370400440532013000",  # actor of a record with a bad timestamp
    "SECRET-NAME-Zoe-Quarantine",  # personal attribute of a record with a bad amount
    "SECRET-CP-GB33BUKB20201555555555",  # counterparty of a record with too few columns
    "SECRET-ACCT-NOT-IN-MAP",  # personal attribute whose value is not in its map
    "SECRET-ACCT-LATIN1-M",  # actor of a record with a byte that is not UTF-8
    "SECRET-ACCEPTED-ACCT-1",  # actor of an accepted record
]
# Values stored in clear on purpose (a note, a bad timestamp's text): the search must find them.
CONTROLS = ["CONTROL-NOTE-accepted-7781", "CONTROLBADTS-3312"]
MAPPING = """\
source: bank
csv: {delimiter: ";"}
fields:
  event_id: id
  ts: ts
  kind: kind
  actor: acct
  counterparty: cp
  amount: amount
attrs:
  note: note
  customer_name: name
  tier: {column: tier, map: {GOLD: gold, BASIC: basic}, unmapped: quarantine}
personal: [attrs.customer_name, attrs.tier]
"""
HEADER = "id;ts;kind;acct;cp;amount;note;name;tier\n"
ROWS = [
    f"1;2024-07-01 10:00;payment;{SECRETS[5]};x;10;{CONTROLS[0]};Ann;GOLD",
    f"2;{CONTROLS[1]};payment;{SECRETS[0]};x;10;n;Bob;GOLD",
    f"3;2024-07-01 10:00;payment;a;x;1x0;n;{SECRETS[1]};GOLD",
    f"4;2024-07-01 10:00;payment;a;{SECRETS[2]};10",
    f"5;2024-07-01 10:00;payment;a;x;10;n;Cy;{SECRETS[3]}",
]
LATIN1_ROW = f"6;2024-07-01 10:00;payment;{SECRETS[4]}\xe9;x;10;n;Di;GOLD"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A process that would create files readable by everyone (umask 022), as before."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KEY", "KEY_FILE", "DB", "CONFIG", "STORE", "AUDIT_KEY_FILE"):
        monkeypatch.delenv(f"FLAGSTONE_{name}", raising=False)
    monkeypatch.chdir(tmp_path)


def _ingest(store: Store, folder: Path) -> None:
    (folder / "bank.yaml").write_text(MAPPING)
    data = folder / "bank.csv"
    data.write_bytes((HEADER + "\n".join(ROWS) + "\n").encode() + (LATIN1_ROW + "\n").encode("latin-1"))
    r = ingest_file(store, data, folder / "bank.yaml", progress=False)
    assert (r.loaded, r.quarantined) == (1, 5), r.summary()


def _bytes_beside(store_path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in beside_store(store_path) if p.is_file()}


def _supervisor(ov: Oversight, name: str) -> None:
    """A supervisor as a deployment makes one: the first admin bootstraps, a grant they approve."""
    admin = create_user(ov, "cli:root", "adm", PASSWORD, "admin", "aml")
    assert isinstance(admin, User)
    grant = create_user(ov, "cli:root", name, PASSWORD, "supervisor", "aml")
    assert isinstance(grant, Grant)
    approve_grant(ov, admin, grant.id)


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_no_identifier_of_a_quarantined_record_is_in_any_file_beside_the_store(
    tmp_path: Path, env: None, loose_umask: None
) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        # Uncompressed, so that a value stored in clear shows as its bytes (the controls prove it).
        st.con.execute("SET force_compression = 'uncompressed'")
        _ingest(st, tmp_path)
        in_wal = _bytes_beside(path)
        st.con.execute("CHECKPOINT")
        checkpointed = _bytes_beside(path)
    closed = _bytes_beside(path)
    assert any(str(p).endswith(".wal") for p in in_wal), "the write-ahead log was not looked at"
    for files in (in_wal, checkpointed, closed):
        everything = b"".join(files.values())
        for control in CONTROLS:
            assert control.encode() in everything
        for secret in SECRETS:
            found = [name for name, data in files.items() if secret.encode() in data]
            assert not found, f"{secret} in clear in {found}"
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT batch_id, record, field, value, raw_nonce, raw_sealed FROM quarantine").fetchall()
    # The raw text is still there for a supervisor: encrypted with the identities' key.
    p = Pseudonymiser.for_store(path, create=False)
    raw = {rec: open_raw(p, b, rec, n, s) for b, rec, _, _, n, s in rows}
    assert SECRETS[0] in raw[2] and SECRETS[1] in raw[3] and SECRETS[2] in raw[4] and SECRETS[4] in raw[6]
    values = {rec: (field, value) for _, rec, field, value, *_ in rows}
    assert values[2] == ("ts", CONTROLS[1])  # not an identifier: kept as an accepted record keeps it
    assert values[5] == ("attrs.tier", p.pseudonymise(SECRETS[3]))  # an identifier: its pseudonym
    assert values[4] == ("record", None)  # unparsed: only in the sealed text


def test_the_store_and_every_file_beside_it_are_owner_only(tmp_path: Path, env: None, loose_umask: None) -> None:
    from flagstone.serve._log import IntakeLog, entry_line, log_folder

    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        _ingest(st, tmp_path)
        assert Path(f"{path}.wal").exists()
        IntakeLog(log_folder(path)).append(entry_line({"event": 1}))
    Oversight.open(path).close()  # the case database and the audit key
    files = beside_store(path)
    names = {p.name for p in files}
    assert {"s.duckdb", "s.duckdb.key", "s.duckdb.cases.sqlite", "s.duckdb.audit-key", "s.duckdb.intake"} <= names
    for p in files:
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), f"{p}: {_mode(p):04o}"


def test_a_store_left_readable_by_an_older_flagstone_is_tightened_and_said_so(
    tmp_path: Path, env: None, loose_umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.duckdb"
    duckdb.connect(str(path)).close()
    intake = Path(f"{path}.intake")
    intake.mkdir()
    (intake / "1.jsonl").write_text("{}\n")
    for p, mode in ((path, 0o644), (intake, 0o755), (intake / "1.jsonl", 0o644)):
        os.chmod(p, mode)
    Path(f"{path}.key").write_text(KEY + "\n")
    os.chmod(f"{path}.key", 0o640)
    with Store(path, read_only=True):
        pass
    for p in (path, intake / "1.jsonl", Path(f"{path}.key")):
        assert _mode(p) == 0o600
    assert _mode(intake) == 0o700
    said = capsys.readouterr().err
    assert f"{path} was readable by other users (mode 0644); now 0600" in said
    assert f"{path}.key was readable by other users (mode 0640); now 0600" in said


def test_exports_and_reports_are_owner_only(tmp_path: Path, env: None, loose_umask: None) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        _ingest(st, tmp_path)
    (tmp_path / "old.jsonl").write_text("")
    os.chmod(tmp_path / "old.jsonl", 0o644)  # an earlier export, overwritten
    runner = CliRunner()
    for args in (
        ["export", "--parquet", str(tmp_path / "export")],
        ["alerts", "--out", str(tmp_path / "old.jsonl")],
        ["report", "--out", str(tmp_path / "report.html")],
    ):
        os.umask(0o022)  # as a shell would start each command
        result = runner.invoke(app, [*args, "--store", str(path)])
        assert result.exit_code == 0, result.output
    for p in [tmp_path / "old.jsonl", tmp_path / "report.html", *(tmp_path / "export").rglob("*")]:
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), f"{p}: {_mode(p):04o}"
    assert _mode(tmp_path / "export") == 0o700


def test_quarantined_records_are_listed_pseudonymised_and_read_only_by_a_supervisor_with_a_reason(
    tmp_path: Path, env: None
) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        _ingest(st, tmp_path)
    ov = Oversight.open(path)
    _supervisor(ov, "sam")
    create_user(ov, "test", "ana", PASSWORD, "analyst", "aml")
    ov.close()
    runner = CliRunner()
    store = ["--store", str(path)]

    listed = runner.invoke(app, ["quarantine", "list", *store])
    assert listed.exit_code == 0, listed.output
    shown = runner.invoke(app, ["quarantine", "show", "1", "5", *store])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["field"] == "attrs.tier" and record["value"].startswith("p_")
    assert record["parsed"]["actor"].startswith("p_") and record["parsed"]["event_id"] == "5"
    for output in (listed.output, shown.output):
        assert not any(s in output for s in SECRETS)

    reveal = ["quarantine", "reveal", "1", "2", "--password-stdin", *store]
    refused = runner.invoke(app, [*reveal, "--user", "ana", "--reason", "curious"], input=PASSWORD + "\n")
    assert refused.exit_code == 2 and SECRETS[0] not in refused.output
    assert "supervisor" in refused.output
    wrong = runner.invoke(app, [*reveal, "--user", "sam", "--reason", "fix"], input="wrong password\n")
    assert wrong.exit_code == 2 and SECRETS[0] not in wrong.output
    blank = runner.invoke(app, [*reveal, "--user", "sam", "--reason", "  "], input=PASSWORD + "\n")
    assert blank.exit_code == 2 and SECRETS[0] not in blank.output
    ok = runner.invoke(app, [*reveal, "--user", "sam", "--reason", "fix the export job"], input=PASSWORD + "\n")
    assert ok.exit_code == 0, ok.output
    assert SECRETS[0] in ok.output

    log = runner.invoke(app, ["audit", "log", *store])
    assert log.exit_code == 0
    entries = [line for line in log.output.splitlines() if "quarantine" in line]
    assert any("quarantine_revealed" in e and "sam" in e for e in entries), log.output
    assert any("authorisation_failed" in e and "ana" in e for e in entries), log.output
    assert SECRETS[0] not in log.output


def test_an_older_stores_clear_quarantine_is_sealed_by_the_next_ingest(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.duckdb"
    with duckdb.connect(str(path)) as con:  # the quarantine table as an older Flagstone made it
        con.execute(
            "CREATE TABLE quarantine (batch_id BIGINT NOT NULL, source VARCHAR NOT NULL, file VARCHAR NOT NULL, "
            "record BIGINT NOT NULL, field VARCHAR, value VARCHAR, reason VARCHAR NOT NULL, raw VARCHAR)"
        )
        con.execute(
            "INSERT INTO quarantine VALUES (99, 'bank', 'old.csv', 7, 'actor', 'SECRET-OLD', 'r', 'a;SECRET-OLD;b'),"
            " (99, 'bank', 'old.csv', 8, 'ts', 'yesterday', 'r', 'a;SECRET-OLD-2;yesterday')"
        )
    with Store(path) as st:
        _ingest(st, tmp_path)
        rows = st.con.execute(
            "SELECT record, value, raw_nonce, raw_sealed FROM quarantine WHERE batch_id = 99 ORDER BY record"
        ).fetchall()
        columns = [r[0] for r in st.con.execute("DESCRIBE quarantine").fetchall()]
    assert "raw" not in columns
    p = Pseudonymiser.for_store(path, create=False)
    assert [(rec, value, open_raw(p, 99, rec, n, s)) for rec, value, n, s in rows] == [
        (7, None, "a;SECRET-OLD;b"),  # a value that may have been an identifier is dropped
        (8, "yesterday", "a;SECRET-OLD-2;yesterday"),
    ]


def test_the_scoring_service_keeps_no_identifier_in_clear_and_its_files_owner_only(
    tmp_path: Path, env: None, loose_umask: None
) -> None:
    from fastapi.testclient import TestClient

    from flagstone.serve import ScoringService, create_app, create_key

    path = tmp_path / "served.duckdb"
    key = create_key(path, "tests")
    service = ScoringService(path, [], canonical=["api"])
    good = {"event_id": "e1", "ts": "2024-07-01T10:00:00Z", "kind": "payment", "actor": SECRETS[0], "amount": 5}
    bad = {**good, "event_id": "e2", "counterparty": SECRETS[2], "amount": "five"}
    with TestClient(create_app(service)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.post("/v1/events", json=[good], headers=auth).status_code == 200
        assert client.post("/v1/events", json=[bad], headers=auth).status_code == 422
        segments = list(Path(f"{path}.intake").glob("*"))
        files = _bytes_beside(path)
        service.flush()
        files.update(_bytes_beside(path))
    files.update(_bytes_beside(path))
    assert segments and any("intake" in name for name in files)
    for name, data in files.items():
        assert SECRETS[0].encode() not in data and SECRETS[2].encode() not in data, name
    for p in beside_store(path):
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), f"{p}: {_mode(p):04o}"


def test_a_sealed_record_moved_to_another_row_does_not_decrypt(tmp_path: Path, env: None) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        _ingest(st, tmp_path)
        # Someone with write access to the store swaps two records' sealed texts.
        st.con.execute(
            "UPDATE quarantine q SET raw_nonce = o.raw_nonce, raw_sealed = o.raw_sealed FROM quarantine o "
            "WHERE q.record = 2 AND o.record = 3"
        )
    ov = Oversight.open(path)
    _supervisor(ov, "sam")
    ov.close()
    args = ["quarantine", "reveal", "1", "2", "--user", "sam", "--reason", "r", "--password-stdin"]
    args += ["--store", str(path)]
    result = CliRunner().invoke(app, args, input=PASSWORD + "\n")
    assert result.exit_code == 2 and "cannot be decrypted" in result.output
    assert SECRETS[1] not in result.output
