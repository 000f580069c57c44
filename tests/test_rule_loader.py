"""Rule files: every error names the file, the line and the field; parameters resolve."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from flagstone.errors import RuleError
from flagstone.rules import WindowRule, load_rules
from flagstone.rules.ir import Compare, Field, InList, Literal, Logical

GOOD = """\
id: t.struct
version: 2
title: Test
severity: high
kind: window
params:
  threshold: 10000
  band: 0.1
match: kind = 'cash_deposit' and amount >= (1 - $band) * $threshold
window: 7d
aggregates:
  n: count(*)
  total: sum(amount)
having: n >= 3
reason: "{n} deposits totalling {total} within {window}"
"""


def write(tmp_path: Path, text: str, name: str = "rule.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_rules([write(tmp_path, text)])
    return info.value


def test_good_rule_loads(tmp_path: Path) -> None:
    rule = load_rules([write(tmp_path, GOOD)]).rules[0]
    assert isinstance(rule, WindowRule)
    assert rule.window_us == 7 * 24 * 3600 * 10**6
    assert dict(rule.meta.params) == {"threshold": 10000, "band": Decimal("0.1")}


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        ("having: n >= 3", "having: n >= 'x'", 14, "having", "cannot compare a number with a string"),
        ("having: n >= 3", "having: amount > 3", 14, "having", "differs between the events"),
        ("having: n >= 3", "having: n >=", 14, "having", "cannot parse"),
        ("  n: count(*)", "  n: median(amount)", 12, "aggregates.n", "not an aggregate"),
        ("  total: sum(amount)", "  total: sum(kind)", 13, "aggregates.total", "needs a number"),
        ("window: 7d", "window: 7 parsecs", 10, "window", "not a duration"),
        ("severity: high", "severity: dire", 4, "severity", "one of"),
        ("kind: window", "kind: telepathy", 5, "kind", "unknown rule kind"),
        ("version: 2", "version: two", 2, "version", "whole number"),
        ("(1 - $band)", "(1 - $bandwidth)", 9, "match", "unknown parameter $bandwidth"),
        ("kind = 'cash_deposit'", "knd = 'cash_deposit'", 9, "match", "unknown field 'knd'"),
        ("kind = 'cash_deposit'", "actor.religion = 'x'", 9, "match", "unknown actor attribute"),
        ("kind = 'cash_deposit'", "kind = 'a' and amount", 9, "match", "must be true or false"),
        ('reason: "{n} deposits', 'reason: "{count} deposits', 15, "reason", "{count}"),
        ("title: Test", "title: Test\ncolour: red", 4, "colour", "unknown key"),
        ("kind = 'cash_deposit'", "attrs.Religious_Group = 'x'", 9, "match", "protected attribute"),
        ("kind = 'cash_deposit'", "attrs.trade_union = 'x'", 9, "match", "protected attribute"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, field: str, words: str) -> None:
    assert old in GOOD
    err = error_for(tmp_path, GOOD.replace(old, new))
    assert err.path and err.path.endswith("rule.yaml")
    assert (err.line, err.field) == (line, field)
    assert words in str(err)
    assert str(err).startswith(f"{err.path}:{line}")


def test_missing_required_key(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("title: Test\n", ""))
    assert err.field == "title"


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("n: count(*)", "n: [count(*)"))
    assert err.line is not None and "not valid YAML" in str(err)


def test_duplicate_ids_refused(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(RuleError, match=r"duplicate rule id 't\.struct'"):
        load_rules([tmp_path])


def test_deployment_parameters_override_defaults(tmp_path: Path) -> None:
    rule_path = write(tmp_path, GOOD)
    params = write(tmp_path, "t.struct:\n  threshold: 15000\n", "deploy.yml")
    rule = load_rules([rule_path], params_file=params, overrides=["t.struct.band=0.2"]).rules[0]
    assert dict(rule.meta.params) == {"threshold": 15000, "band": Decimal("0.2")}
    # (1 - 0.2) * 15000 is folded into the match expression as written, exact.
    assert "15000" in repr(rule.match) and "0.2" in repr(rule.match)


@pytest.mark.parametrize(
    ("override", "words"),
    [("t.struct.nope=1", "has no parameter 'nope'"), ("x.y.threshold=1", "unknown rule 'x.y'"), ("bad", "--set")],
)
def test_bad_overrides(tmp_path: Path, override: str, words: str) -> None:
    with pytest.raises(RuleError, match=re.escape(words)):
        load_rules([write(tmp_path, GOOD)], overrides=[override])


def test_basket_desugars_to_window(tmp_path: Path) -> None:
    text = (
        "id: t.basket\nversion: 1\ntitle: b\nseverity: low\nkind: basket\nwindow: 5d\n"
        "categories: [a, b, c]\nmin_distinct: 2\n"
    )
    rule = load_rules([write(tmp_path, text)]).rules[0]
    assert isinstance(rule, WindowRule)
    assert rule.having == Compare(">=", rule.having.left, Literal(2))  # type: ignore[union-attr]
    err = error_for(tmp_path, text.replace("min_distinct: 2", "min_distinct: 4"))
    assert (err.field, err.line) == ("min_distinct", 8)


def test_every_shipped_pack_loads() -> None:
    packs = Path(__file__).resolve().parent.parent / "packs"
    ids = {r.meta.id for r in load_rules([packs])}
    assert {"aml.structuring", "precursors.basket", "transit.cloned_card", "pep.spending_above_income"} <= ids
    for rule in load_rules([packs]):
        assert rule.meta.rationale and rule.meta.legal_basis and rule.meta.owner and rule.meta.reason


WATCHED = """\
id: t.watched
version: 1
title: w
severity: low
kind: basket
params:
  min_categories: 2
  precursors: [p.a, p.b]
  components: [c.a, c.b]
window: 5d
categories: [$precursors, $components, other]
min_distinct: $min_categories
"""


def basket_values(rule: object) -> list[object]:
    assert isinstance(rule, WindowRule) and isinstance(rule.match, InList)
    return [v.value for v in rule.match.values]


def test_basket_categories_from_list_parameters(tmp_path: Path) -> None:
    rule = load_rules([write(tmp_path, WATCHED)]).rules[0]
    assert basket_values(rule) == ["p.a", "p.b", "c.a", "c.b", "other"]
    assert dict(rule.meta.params)["components"] == ("c.a", "c.b")
    # A deployment replaces one list (with --set or a params file); duplicates count once.
    params = write(tmp_path, "t.watched:\n  components: [c.z, p.a]\n", "deploy.yml")
    rule = load_rules([write(tmp_path, WATCHED)], params_file=params, overrides=["t.watched.min_categories=3"]).rules[0]
    assert basket_values(rule) == ["p.a", "p.b", "c.z", "other"]
    rule = load_rules([write(tmp_path, WATCHED)], overrides=["t.watched.precursors=[p.q]"]).rules[0]
    assert basket_values(rule) == ["p.q", "c.a", "c.b", "other"]
    # Other lists are another parameter set (their alerts get ids of their own); the same list is not.
    assert rule.meta.param_set != ""
    same = load_rules([write(tmp_path, WATCHED)], overrides=["t.watched.precursors=[p.a, p.b]"]).rules[0]
    assert same.meta.param_set == ""
    one = WATCHED.replace("categories: [$precursors, $components, other]", "categories: $components")
    assert basket_values(load_rules([write(tmp_path, one)]).rules[0]) == ["c.a", "c.b"]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("t.watched.components=c.a", "parameter components is a list in the rule file; give a list"),
        ("t.watched.min_categories=[2]", "parameter min_categories is one value in the rule file, not a list"),
        ("t.watched.components=[]", "parameter components must be a non-empty list of numbers or text"),
        ("t.watched.components=[a, 1]", "parameter components mixes text and numbers"),
        ("t.watched.components=[[a]]", "parameter components must be a non-empty list of numbers or text"),
        ("t.watched.min_categories=6", "min_distinct must be a whole number from 1 to 5"),
    ],
)
def test_bad_list_parameters_are_refused(tmp_path: Path, override: str, words: str) -> None:
    with pytest.raises(RuleError, match=re.escape(words)):
        load_rules([write(tmp_path, WATCHED)], overrides=[override])


@pytest.mark.parametrize(
    ("categories", "words", "line"),
    [
        ("[$nope]", "unknown parameter $nope", 11),
        ("[$min_categories]", "categories are text values, not '$min_categories'", 11),
        ("[5]", "categories are text values, not 5", 11),
        ("[]", "categories must be a non-empty list", 11),
    ],
)
def test_bad_basket_categories_name_the_line(tmp_path: Path, categories: str, words: str, line: int) -> None:
    err = error_for(tmp_path, WATCHED.replace("[$precursors, $components, other]", categories))
    assert words in str(err) and (err.field, err.line) == ("categories", line)


def test_list_parameters_in_expressions(tmp_path: Path) -> None:
    text = GOOD.replace("params:\n", "params:\n  kinds: [cash_deposit, cash_withdrawal]\n")
    text = text.replace("match: kind = 'cash_deposit'", "match: kind in $kinds")
    rule = load_rules([write(tmp_path, text)]).rules[0]
    assert isinstance(rule.match, Logical)
    assert rule.match.left == InList(Field("kind"), (Literal("cash_deposit"), Literal("cash_withdrawal")))
    rule = load_rules(
        [write(tmp_path, text.replace("kind in", "kind not in"))], overrides=["t.struct.kinds=[x]"]
    ).rules[0]
    assert rule.match.left == InList(Field("kind"), (Literal("x"),), negated=True)  # type: ignore[attr-defined]
    err = error_for(tmp_path, text.replace("kind in $kinds", "kind = $kinds"))
    assert "$kinds is a list; a list parameter is read only as `x in $kinds`" in str(err)
    err = error_for(tmp_path, text.replace("kind in $kinds", "amount in $threshold"))
    assert "$threshold is one value, not a list" in str(err)
