"""Special categories are refused by name in mappings as well as rules, however the name is written.

A mapping could once put a `religion` column into `attrs.r1`, `attrs.faith`, an attribute spelt
with a Cyrillic 'е', or the canonical field `channel`, and rules over it loaded and fired (also
through a profile). Names are now compared by skeleton (NFKC, case folding, lookalike letters,
invisible characters and marks removed), the mapping's source columns and targets are checked,
and `protected_fields` and declared special columns bind mappings and rules alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.config import Config
from flagstone.errors import InputError, MappingError, RuleError
from flagstone.ingest import load_mapping
from flagstone.protected import ALONE, ANYWHERE, WORDS, protected_match
from flagstone.rules import load_rules

MAPPING = """\
source: bank
fields:
  event_id: id
  ts: ts
  kind: kind
{fields}attrs:
{attrs}"""
RULE = {
    "id": "t.rule",
    "version": 1,
    "title": "t",
    "severity": "low",
    "kind": "condition",
    "condition": "true",
}

# Written out here rather than taken from flagstone.protected, so the module's table is tested
# against an independent one: lower- and upper-case Latin lookalikes from Cyrillic, Greek, Armenian.
LOOKALIKES = {
    "a": "аα", "c": "сϲ", "d": "ԁ", "e": "еε", "g": "ց", "h": "һհ", "i": "іι", "j": "ј", "k": "кκ",
    "l": "ӏ", "n": "ո", "o": "оοօ", "p": "рρ", "q": "ԛ", "s": "ѕ", "t": "τ", "u": "υս", "v": "νѵ",
    "w": "ԝ", "x": "хχ", "y": "уү",
    "A": "АΑ", "B": "ВΒ", "C": "С", "E": "ЕΕ", "H": "НΗ", "I": "ІΙ", "J": "Ј", "K": "КΚ", "M": "МΜ",
    "N": "Ν", "O": "ОΟ", "P": "РΡ", "S": "Ѕ", "T": "ТΤ", "X": "ХΧ", "Y": "ҮΥ", "Z": "Ζ",
}  # fmt: skip
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u034f"]
MARKS = ["\u0301", "\u0300", "\u0308", "\u0323", "\u0336", "\u20dd"]
SEPARATORS = ["_", "-", ".", " ", "__"]
INNOCENT = [
    "trace_id", "traceId", "TRACE_ID", "brace", "embrace", "grace_period", "racetrack", "terrace",
    "bracelet", "unit_price", "reunion", "credit_union_id", "union_pay_ref", "unionpay",
    "european_union_vat", "politically_exposed", "pep", "device_fingerprint", "denomination",
    "account_disabled", "wealth", "technical", "screen_orientation", "order_id", "reference",
    "counterparty", "description", "channel_code", "customer_type", "monthly_income", "mcc",
    "subscription", "terminal", "fare_product", "essex_branch",
]  # fmt: skip


def _variants(letter: str) -> list[str]:
    out = [letter, letter.upper(), chr(ord(letter) + 0xFEE0), chr(ord(letter.upper()) + 0xFEE0)]
    out.append(chr(0x1D41A + ord(letter) - ord("a")))  # MATHEMATICAL BOLD SMALL
    out += list(LOOKALIKES.get(letter, "")) + list(LOOKALIKES.get(letter.upper(), ""))
    return out


@st.composite
def disguised(draw: st.DrawFn, stem: str) -> str:
    """``stem`` with each letter in another case, width or script, with marks and invisible characters."""
    out = []
    for c in stem:
        out.append(draw(st.sampled_from(_variants(c))))
        out.append(draw(st.sampled_from(["", "", *MARKS])))
        out.append(draw(st.sampled_from(["", "", "", *INVISIBLE])))
    return "".join(out)


@st.composite
def special_names(draw: st.DrawFn) -> str:
    stem = draw(st.sampled_from(ANYWHERE + WORDS + ALONE))
    name = draw(disguised(stem))
    if stem in ALONE:
        return name
    join = st.sampled_from(SEPARATORS if stem in WORDS else ["", *SEPARATORS])
    before = draw(st.sampled_from(["", "customer", "Client", "x1"]))
    after = draw(st.sampled_from(["", "code", "Group", "2"]))
    return (before + draw(join) if before else "") + name + (draw(join) + after if after else "")


@given(special_names())
@settings(max_examples=400, deadline=None)
def test_every_stem_is_found_however_it_is_written(name: str) -> None:
    assert protected_match(name) is not None, ascii(name)


@pytest.mark.parametrize("name", INNOCENT)
def test_common_innocent_names_are_not_special(name: str, tmp_path: Path) -> None:
    assert protected_match(name) is None
    mapping = _mapping(tmp_path, attrs=f"  {name}: {name}\n")
    assert [a.name for a in load_mapping(mapping, Config()).attrs] == [f"attrs.{name}"]
    rule = _rule(tmp_path, f"attrs.\"{name}\" = 'x'")
    assert len(load_rules([rule], protected=[])) == 1


# -- mappings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "attrs", "line", "field"),
    [
        ("", "  r1: religion\n", 7, "attrs.r1"),
        ("", "  r1: {column: Religion}\n", 7, "attrs.r1.column"),
        ("", "  faith: FAITH_CODE\n", 7, "attrs.faith"),
        ("", "  rеligion: code\n", 7, "attrs.rеligion"),  # Cyrillic е in the attribute name
        ("", "  x: ｒｅｌｉｇｉｏｎ\n", 7, "attrs.x"),  # fullwidth column name
        ("", "  x: rel\u200bigion\n", 7, "attrs.x"),  # a zero-width space in it
        ("  channel: {column: religion}\n", "  a: b\n", 6, "fields.channel.column"),
        ("  place: customerEthnicity\n", "  a: b\n", 6, "fields.place"),
        ("", "  tu: trade-union-member\n", 7, "attrs.tu"),
        ("", "  r: customer.religion\n", 7, "attrs.r"),  # a JSON path
        ("", '  r: "\u202enoigiler"\n', 7, "attrs.r"),  # shows as 'religion' (right-to-left override)
    ],
)
def test_a_mapping_reading_or_writing_a_special_category_is_refused_with_file_line_and_field(
    tmp_path: Path, fields: str, attrs: str, line: int, field: str
) -> None:
    path = _mapping(tmp_path, fields, attrs)
    with pytest.raises(MappingError) as info:
        load_mapping(path, Config())
    e = info.value
    assert (e.path, e.line, e.field) == (str(path), line, field)
    assert str(e).startswith(f"{path}:{line}, field '{field}'")
    assert ("special category" in str(e) and "declared_special_columns" in str(e)) or "bidirectional" in str(e)


@given(special_names())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_disguised_special_column_is_refused_by_the_mapping(tmp_path: Path, name: str) -> None:
    path = _mapping(tmp_path, attrs=f"  r1: {json.dumps(name, ensure_ascii=False)}\n")
    with pytest.raises(MappingError) as info:
        load_mapping(path, Config())
    assert (info.value.line, info.value.field) == (7, "attrs.r1")


def test_protected_fields_bind_mapping_targets_and_columns(tmp_path: Path) -> None:
    config = Config(protected_fields=["nationality", "attrs.segment", "channel"])
    refused = [
        ("", "  nationality: NAT\n", "attrs.nationality"),
        ("", "  n: nationality\n", "attrs.n"),  # the column, under another name
        ("", "  n: Nаtionality\n", "attrs.n"),  # with a Cyrillic а
        ("", "  segment: SEG\n", "attrs.segment"),
        ("  channel: CH\n", "  a: b\n", "fields.channel"),
    ]
    for fields, attrs, field in refused:
        with pytest.raises(MappingError, match="configuration marks protected") as info:
            load_mapping(_mapping(tmp_path, fields, attrs), config)
        assert info.value.field == field
    load_mapping(_mapping(tmp_path, "  place: PLACE\n", "  segment_code: SEG\n"), config)  # others load


def test_a_declared_special_column_is_kept_only_under_its_own_name_and_no_rule_reads_it(tmp_path: Path) -> None:
    config = Config(
        declared_special_columns=[
            {"column": "religion", "purpose": "church tax, kept by law; never used in detection"},
            {"column": "x1", "purpose": "holds the customer's ethnicity in the KYC export"},
        ]
    )
    assert load_mapping(_mapping(tmp_path, attrs="  religion: religion\n  x1: x1\n"), config).attrs
    for fields, attrs in [("", "  r1: religion\n"), ("  channel: religion\n", "  a: b\n"), ("", "  y: x1\n")]:
        with pytest.raises(MappingError, match="declared special-category data"):
            load_mapping(_mapping(tmp_path, fields, attrs), config)
    for condition in ["attrs.religion = 'x'", "attrs.x1 = 'x'", "attrs.X1 = 'x'"]:
        with pytest.raises(RuleError, match="protected"):
            load_rules([_rule(tmp_path, condition)], protected=config.unreadable_by_rules())
    with pytest.raises(ValueError, match="purpose"):
        Config(declared_special_columns=[{"column": "religion", "purpose": "  "}])


def test_flagstone_ingest_refuses_the_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLAGSTONE_CONFIG", raising=False)
    data = tmp_path / "bank.csv"
    data.write_text("id,ts,kind,religion\n1,2024-01-01,payment,x\n")
    path = _mapping(tmp_path, attrs="  r1: religion\n")
    store = tmp_path / "s.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(data), "--mapping", str(path), "--store", str(store), "-q"])
    assert result.exit_code == 2, result.output
    assert f"{path}:7, field 'attrs.r1'" in result.output
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)


# -- rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "profile", "protected"),
    [
        ("attrs.rеligion = 'x'", None, []),  # Cyrillic е
        ("attrs.ＲＥＬＩＧＩＯＮ = 'x'", None, []),  # fullwidth
        ("attrs.\"re\u200bligion\" = 'x'", None, []),
        ("actor.devout > 0", "attrs.r1 = 'x'", ["attrs.r1"]),  # a configured attribute, read by a profile
        ("actor.devout > 0", "attrs.Nаtionality = 'x'", ["nationality"]),
        ("attrs.Nationality = 'x'", None, ["nationality"]),
    ],
)
def test_rules_are_refused_however_the_name_is_written_and_through_profiles(
    tmp_path: Path, condition: str, profile: str | None, protected: list[str]
) -> None:
    path = _rule(tmp_path, condition, {"devout": {"match": profile}} if profile else None)
    with pytest.raises(RuleError, match="protected"):
        load_rules([path], protected=protected)


def test_a_profile_named_after_a_special_category_is_refused(tmp_path: Path) -> None:
    path = _rule(tmp_path, "actor.faith_score > 0", {"faith_score": {"match": "attrs.r1 = 'x'"}})
    with pytest.raises(RuleError, match="protected attribute") as info:
        load_rules([path], protected=[])
    assert info.value.field == "actor.faith_score"


def test_a_bad_declaration_is_a_configuration_error(tmp_path: Path) -> None:
    from flagstone.config import load_config

    path = tmp_path / "flagstone.yaml"
    path.write_text("declared_special_columns:\n  - column: religion\n")
    with pytest.raises(InputError, match="purpose") as info:
        load_config(path)
    assert info.value.line == 2


def _mapping(tmp_path: Path, fields: str = "", attrs: str = "  a: b\n") -> Path:
    path = tmp_path / "bank.yaml"
    path.write_text(MAPPING.format(fields=fields, attrs=attrs), encoding="utf-8")
    return path


def _rule(tmp_path: Path, condition: str, profiles: dict[str, dict[str, str]] | None = None) -> Path:
    doc = {**RULE, "condition": condition, **({"profiles": profiles} if profiles else {})}
    path = tmp_path / "rule.yaml"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"religion": "x"}, "attrs.religion"),
        ({"r\u0435ligion": "x"}, "attrs.r\u0435ligion"),  # Cyrillic е
        ({"profile": {"customerEthnicity": "x"}}, "attrs.profile.customerEthnicity"),
        ({"tags": [{"health_status": 1}]}, "attrs.tags.health_status"),
    ],
)
def test_canonical_events_with_a_special_attribute_key_are_refused(attrs: dict[str, object], field: str) -> None:
    """Canonical events (flagstone serve --source, canonical JSON lines) bring their own attrs keys,
    which no mapping names: each event is checked, and refused with the key's path."""
    from flagstone.ingest import CanonicalIntake, Pseudonymiser

    intake = CanonicalIntake("api", Pseudonymiser(b"k" * 32))
    base = {"event_id": "e1", "ts": "2026-03-01T10:00:00Z", "kind": "payment", "actor": "alice"}
    events, errors = intake.convert([{**base, "attrs": attrs}, {**base, "event_id": "e2", "attrs": {"trace_id": 1}}])
    assert [e["event_id"] for e in events] == ["e2"]
    assert [(e.index, e.field) for e in errors] == [(0, field)]
    assert "special category" in errors[0].reason
