"""Hostile files (issue 13, item 11): YAML with aliases, anchors, merge keys, odd tags or deep
nesting in mappings, rules and flagstone.yaml; CSV files too wide or with endless lines; and
escape sequences in file names, headers and values. Each gets a clear error naming the file (and
the line), never a traceback, a stall, or raw control characters on the terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ingest_records import quarantine
from typer.testing import CliRunner

from flagstone._yaml import MAX_DEPTH, load_located, load_text
from flagstone.cli import app
from flagstone.config import load_config
from flagstone.errors import InputError, MappingError, RuleError, printable
from flagstone.ingest import ingest_file, load_mapping
from flagstone.ingest._sources import MAX_COLUMNS, MAX_RECORD_CHARS
from flagstone.rules import load_rules
from flagstone.store import Store

MAPPING = """\
source: t
target: events
format: csv
fields:
  event_id: id
  ts: ts
  kind: {value: payment}
  actor: actor
  amount: amount
  currency: {value: EUR}
"""
RULE = """\
id: t.rule
version: 1
title: t
severity: low
kind: condition
match: kind = 'payment'
condition: amount > 1
reason: "x"
"""
GOOD_CSV = "id,ts,actor,amount\ne1,2024-01-01T00:00:00Z,a,1.5\n"

RECURSIVE = "source: &a [*a]\n"
LAUGHS = "lol0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLAGSTONE_KEY", "11" * 32)
    for name in ("FLAGSTONE_DB", "FLAGSTONE_CONFIG", "FLAGSTONE_STORE", "FLAGSTONE_AUDIT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# -- YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (RECURSIVE, 1, "anchors (&a) are not allowed"),
        ("x: 1\n" + LAUGHS, 2, "anchors (&a0) are not allowed"),
        ("x: *undefined\n", 1, "aliases (*undefined) are not allowed"),
        ("x: 1\n<<: {a: 1}\n", 2, "merge keys (<<) are not allowed"),
        ("x: 1\n? [a, b]\n: 1\n", 2, "a mapping key must be a plain value"),
        ("x: 1\nx: 2\n", 2, "key 'x' appears twice (first on line 1)"),
        ("x: !!python/object:os.system echo\n", 1, "could not determine a constructor"),
        ("x: 2024-13-45\n", 1, "month must be in 1..12"),
        ("x: " + "9" * 5000 + "\n", 1, "cannot read the value"),
        ("x:\n  y: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", 2, f"more than {MAX_DEPTH} levels"),
        ("x: [1\n", 2, "not valid YAML"),
    ],
)
@pytest.mark.parametrize("kind", ["mapping", "rule", "config"])
def test_refused_yaml_names_file_and_line(tmp_path: Path, kind: str, body: str, line: int, words: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(body)
    loader, error = {
        "mapping": (load_mapping, MappingError),
        "rule": (lambda p: load_rules([p]), RuleError),
        "config": (load_config, InputError),
    }[kind]
    with pytest.raises(error) as info:
        loader(path)
    assert info.value.path == str(path) and info.value.line == line, str(info.value)
    assert words in info.value.message


def test_billion_laughs_is_refused_before_any_expansion(tmp_path: Path) -> None:
    """The anchor is refused while the document is composed: no alias is ever followed."""
    path = tmp_path / "lol.yaml"
    path.write_text(MAPPING + LAUGHS)
    with pytest.raises(MappingError, match="anchors"):
        load_mapping(path)


def test_an_oversized_yaml_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("x: '" + "a" * (2 << 20) + "'\n")
    with pytest.raises(InputError, match="a YAML file of at most"):
        load_located(path)


def test_set_values_go_through_the_same_loader(tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(RULE.replace("amount > 1", "amount > $m") + "params:\n  m: 1\n")
    assert load_rules([path], overrides=["t.rule.m=5"]).rules[0] is not None
    for raw in ("&a [*a]", "[1", "!!python/name:os.system"):
        with pytest.raises(RuleError, match=r"--set t\.rule\.m"):
            load_rules([path], overrides=[f"t.rule.m={raw}"])


yaml_text = st.text(
    alphabet=st.sampled_from([*"ab:-&*!<>[]{}?,'\"|#%@`\\ \t\n.0123456789", "\x00", "\ufeff", "\u202e"]),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(text=yaml_text)
def test_any_text_loads_or_is_an_input_error(text: str) -> None:
    """Whatever the text, the loader returns plain data or raises InputError: never a traceback."""
    try:
        doc = load_text(text, "t.yaml")
    except InputError as exc:
        assert exc.path == "t.yaml"
        return
    json.dumps(doc.data, default=str)  # plain, finite data: no alias made it recursive


# -- wide and long CSV ----------------------------------------------------------------------------


def _ingest(tmp_path: Path, name: str, data: str | bytes, mapping: str = MAPPING) -> object:
    (tmp_path / "m.yaml").write_text(mapping)
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    with Store(tmp_path / "s.duckdb") as st:
        return ingest_file(st, path, tmp_path / "m.yaml", progress=False)


def test_a_file_wider_than_the_maximum_is_refused_with_its_width(tmp_path: Path) -> None:
    header = ["id", "ts", "actor", "amount", *(f"c{i}" for i in range(MAX_COLUMNS - 3))]
    with pytest.raises(InputError) as info:
        _ingest(tmp_path, "wide.csv", ",".join(header) + "\n")
    assert info.value.path == str(tmp_path / "wide.csv") and info.value.line == 1
    assert f"{MAX_COLUMNS + 1:,} columns; a file may have at most {MAX_COLUMNS:,}" in info.value.message


def test_a_moderately_wide_file_loads_and_a_missing_column_is_named_briefly(tmp_path: Path) -> None:
    width = 3000
    header = ["id", "ts", "actor", "amount", *(f"c{i}" for i in range(width - 4))]
    row = ["e1", "2024-01-01T00:00:00Z", "a", "1.5", *([""] * (width - 4))]
    text = ",".join(header) + "\n" + ",".join(row) + "\n"
    result = _ingest(tmp_path, "wide.csv", text)
    assert (result.read, result.loaded) == (1, 1)  # type: ignore[attr-defined]
    dupe = ",".join([*header, "c7"]) + "\n"
    with pytest.raises(InputError, match=r"column name\(s\) c7 appear more than once"):
        _ingest(tmp_path, "dupe.csv", dupe)
    with pytest.raises(InputError) as info:
        _ingest(tmp_path, "nocol.csv", text.replace("actor", "actress", 1))
    assert "(and 2,970 more)" in info.value.message and len(info.value.message) < 1000


@pytest.mark.parametrize("malformed", [False, True])
def test_batches_of_a_wide_file_are_bounded_in_bytes_and_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, malformed: bool
) -> None:
    """With a small byte limit, batches hold few records; every record is still loaded or
    quarantined with its raw text, on the fast reader and (a malformed row) on the exact one."""
    from flagstone.ingest import _csv
    from flagstone.ingest._mapping import load_mapping as mapping_of

    monkeypatch.setattr(_csv, "MAX_BATCH_BYTES", 8192)
    header = ["id", "ts", "actor", "amount", *(f"c{i}" for i in range(60))]
    lines = [",".join(header)]
    for r in range(300):
        amount = "oops" if r % 50 == 7 else f"{r}.5"
        lines.append(",".join([f"e{r}", "2024-01-01T00:00:00Z", "a", amount, *(f"v{r}_{i}" for i in range(60))]))
    if malformed:
        lines.append("e999,too,few")
    (tmp_path / "m.yaml").write_text(MAPPING)
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    source = _csv.CsvSource(tmp_path / "w.csv", mapping_of(tmp_path / "m.yaml").csv, {"id": "event_id"})
    source.exact = malformed
    chunks = list(source.chunks(100_000))
    assert len(chunks) > 5 and sum(c.records for c in chunks) == len(lines) - 1
    result = _ingest(tmp_path, "w.csv", "\n".join(lines) + "\n")
    assert (result.loaded, result.quarantined) == (294, 6 + malformed)  # type: ignore[attr-defined]
    with Store(tmp_path / "s.duckdb") as st:
        raw = {rec: text for rec, _, _, _, text in quarantine(st)}  # the raw text rests sealed
    assert raw[8] == lines[8] and raw[58] == lines[58]


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        # (the fast reader takes a row a little over the limit; twice the limit it passes to the exact one)
        ("long.csv", "id,ts,actor,amount\ne1,2024-01-01T00:00:00Z,a," + "1" * (2 * MAX_RECORD_CHARS) + "\n", 2),
        ("many.csv", "id,ts,actor,amount\ne1,2024-01-01T00:00:00Z,a,1" + ",x" * (MAX_RECORD_CHARS // 2) + "\n", 2),
        ("header.csv", "id,ts,actor,amount" + ",x" * (MAX_RECORD_CHARS // 2) + "\n", 1),
        # an unbalanced quote makes the rest of the file one record, over many short lines
        ("quote.csv", 'id,ts,actor,amount\ne1,"2024' + "\nx,y" * (MAX_RECORD_CHARS // 4) + "\n", None),
        ("long.jsonl", '{"id": "' + "x" * (MAX_RECORD_CHARS + 10) + '"}\n', 1),
    ],
)
def test_an_endless_record_is_an_error_naming_its_line(tmp_path: Path, name: str, data: str, line: int | None) -> None:
    mapping = MAPPING if name.endswith(".csv") else MAPPING.replace("format: csv", "format: jsonl")
    with pytest.raises(InputError) as info:
        _ingest(tmp_path, name, data, mapping)
    assert info.value.path == str(tmp_path / name) and "longer than" in info.value.message
    if line is not None:
        assert info.value.line == line


# -- terminal escapes -----------------------------------------------------------------------------

CONTROLS = (
    [chr(c) for c in range(0x20) if c != 0x0A]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029", *(chr(c) for c in range(0x202A, 0x202F))]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\ufeff"]
)
ESCAPES = ["\x1b[31m", "\x1b]8;;http://evil.example/\x07", "\x1b]8;;\x07", "\x1b[2J", "\x9b31m", "\r", "\x07"]
hostile = st.lists(
    st.one_of(st.sampled_from(CONTROLS + ESCAPES), st.sampled_from(list("ab[]/=,\"'é界"))), min_size=1, max_size=12
).map("".join)


def _unprintable(text: str) -> set[str]:
    return {ch for ch in text if ch != "\n" and (unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"))}


def test_printable_escapes_every_control_and_keeps_the_rest() -> None:
    text = "ok é 界 " + "".join(CONTROLS + ESCAPES)
    shown = printable(text)
    assert not _unprintable(shown + "\n") and shown.startswith("ok é 界 \\x00\\x01")
    assert "\\u202e" in shown and "\\x9b" in shown and "\\x1b]8;;http" in shown
    assert printable("x" * 5000).endswith("... (1,000 more characters)")


def _safe_name(text: str) -> str:
    name = text.replace("/", "_").replace("\x00", "_")
    return name if name.strip(".") and len(os.fsencode(name)) < 200 else f"x{len(name)}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile, column=hostile, value=hostile, missing=st.booleans(), quiet=st.booleans())
def test_no_control_character_from_a_hostile_file_reaches_the_terminal(
    tmp_path: Path, name: str, column: str, value: str, missing: bool, quiet: bool
) -> None:
    """A file name, a header and a value full of escape sequences and bidi overrides: whether the
    ingest fails (the mapping's column is missing, so the header is listed) or succeeds (the file
    name is printed, and on the progress bar), stdout and stderr hold none of them raw."""
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    header = ["id", "ts", column, "amount"] if missing else ["id", "ts", "actor", "amount", column]
    row = ["e1", "2024-01-01T00:00:00Z", value, "1.5"] if missing else ["e1", "2024-01-01T00:00:00Z", "a", "1.5", value]
    if len(set(header)) < len(header):
        header[-1] += "_"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, row])
    data = folder / f"{_safe_name(name)}.csv"
    data.write_text(text.getvalue(), encoding="utf-8")
    (folder / "m.yaml").write_text(MAPPING)
    args = ["ingest", str(data), "-m", str(folder / "m.yaml"), "--store", str(folder / "s.duckdb")]
    result = CliRunner().invoke(app, args + (["-q"] if quiet else []))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 2), result.output
    assert not _unprintable(result.stdout), result.stdout
    assert not _unprintable(result.stderr), result.stderr
    if missing and "actor" not in column:
        assert "the mapping reads column 'actor'" in result.stderr


def test_rich_markup_in_a_header_or_file_name_is_shown_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING)
    data = tmp_path / "[bold]x[red].csv"
    data.write_text("id,ts,[/],[red]amount\n")
    result = CliRunner().invoke(app, ["ingest", str(data), "-m", str(tmp_path / "m.yaml"), "--store", "s.duckdb"])
    assert result.exit_code == 2 and "[/], [red]amount" in result.stderr
    data.write_text(GOOD_CSV)
    result = CliRunner().invoke(app, ["ingest", str(data), "-m", str(tmp_path / "m.yaml"), "--store", "s.duckdb"])
    assert result.exit_code == 0, result.output
    assert "[bold]x[red].csv: read 1 = loaded 1" in result.stdout
