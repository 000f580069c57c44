"""Rule files (YAML) -> intermediate form, with every error naming file, line and field."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from flagstone._yaml import LocatedYaml, load_located
from flagstone.errors import RuleError
from flagstone.events import EVENT_FIELDS, IDENTIFIER_FIELDS
from flagstone.rules import ir
from flagstone.rules.expressions import Scope, to_aggregate, to_predicate

COMMON_KEYS = {
    "id": "unique rule id, e.g. aml.structuring",
    "version": "whole number, raised on every change",
    "title": "one line",
    "description": "what the rule finds",
    "rationale": "why the pattern indicates the crime",
    "severity": "low | medium | high | critical",
    "legal_basis": "the law or guidance the rule serves",
    "owner": "team responsible for the rule",
    "kind": "condition | window | basket",
    "params": "named thresholds, used as $name, overridable per deployment",
    "match": "which events the rule looks at (expression); default: all",
    "group_by": "fields whose values make a group; default [actor]",
    "reason": "one-sentence explanation with {placeholders}",
}
KIND_KEYS: dict[str, dict[str, str]] = {
    "condition": {"condition": "expression tested on each matched event"},
    "window": {
        "window": "length W of the sliding window, e.g. 7d, 24h, 30m",
        "aggregates": "name: aggregate, e.g. total: sum(amount)",
        "having": "expression over the aggregates that makes the rule fire",
    },
    "basket": {
        "window": "length W of the sliding window",
        "field": "the field holding the category; default category",
        "categories": "list of category values that count",
        "min_distinct": "fire when at least this many different categories fall in one window",
    },
}
REQUIRED = ("id", "version", "title", "severity", "kind")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|m|h|d|w)\s*$")
_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_UNIT_US["w"] = 7 * _UNIT_US["d"]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[ir.Rule, ...]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def by_id(self, rule_id: str) -> ir.Rule:
        for rule in self.rules:
            if rule.meta.id == rule_id:
                return rule
        raise KeyError(rule_id)


def parse_duration(text: Any) -> int:
    """``7d`` -> microseconds. Units: us, ms, s, m, h, d, w."""
    m = _DURATION.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h, 7d")
    return int(m.group(1)) * _UNIT_US[m.group(2)]


def _param_value(value: Any) -> ir.Value:
    # YAML floats become exact decimals: a threshold of 0.1 must mean 0.1 on every engine.
    if isinstance(value, float):
        return Decimal(repr(value))
    return value  # type: ignore[no-any-return]


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Rule files named directly, plus every *.yaml / *.yml under named folders (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            raise RuleError("no such rule file or folder", path=p)
    return found


def load_rules(
    paths: Sequence[str | Path],
    *,
    params_file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> RuleSet:
    """Load rule files and packs; apply per-deployment parameters; refuse duplicate ids."""
    deployment = _deployment_params(params_file, overrides)
    rules: list[ir.Rule] = []
    seen: dict[str, str] = {}
    for path in rule_files(paths):
        doc = load_located(path, RuleError)
        rid = doc.data.get("id") if isinstance(doc.data, dict) else None
        rule = parse_rule(doc, deployment.get(str(rid), {}))
        if rule.meta.id in seen:
            raise RuleError(
                f"duplicate rule id '{rule.meta.id}' (also in {seen[rule.meta.id]})",
                path=path,
                line=doc.line("id"),
                field="id",
            )
        seen[rule.meta.id] = str(path)
        rules.append(rule)
    for rid in deployment:
        if rid not in seen:
            raise RuleError(f"parameters given for unknown rule '{rid}'", path=params_file, field=rid)
    return RuleSet(tuple(rules))


def _deployment_params(params_file: str | Path | None, overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    if params_file is not None:
        doc = load_located(params_file, RuleError)
        if not isinstance(doc.data, dict) or not all(isinstance(v, dict) for v in doc.data.values()):
            raise RuleError("expected {rule_id: {param: value}}", path=params_file, line=1)
        for rid, values in doc.data.items():
            merged.setdefault(str(rid), {}).update(values)
    for item in overrides:
        key, sep, raw = item.partition("=")
        rid, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not rid or not name:
            raise RuleError(f"--set expects RULE_ID.PARAM=VALUE, got {item!r}", field="--set", value=item)
        merged.setdefault(rid, {})[name] = yaml.safe_load(raw)
    return merged


class _RuleReader:
    """Reads one rule document; knows where each key was, for errors."""

    def __init__(self, doc: LocatedYaml, overrides: dict[str, Any]) -> None:
        self.doc = doc
        self.path = str(doc.path)
        if not isinstance(doc.data, dict):
            raise RuleError("a rule file holds one mapping of keys (id, version, kind, ...)", path=self.path)
        self.data: dict[str, Any] = doc.data
        self.overrides = overrides

    def error(self, key: str, message: str, value: Any = None) -> RuleError:
        return RuleError(message, path=self.path, line=self.doc.line(*key.split(".")), field=key, value=value)

    def scope(self, key: str, params: dict[str, ir.Value], **kw: Any) -> Scope:
        return Scope(path=self.path, line=self.doc.line(key), field=key, params=params, **kw)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, f"'{key}' is required ({(COMMON_KEYS | _all_kind_keys()).get(key, '')})")
        if isinstance(value, dict | list):
            raise self.error(key, f"'{key}' must be text", value)
        return str(value).strip()

    def resolve(self, key: str, params: dict[str, ir.Value]) -> Any:
        """A value that may be written as $param."""
        value = self.data.get(key)
        if isinstance(value, str) and value.strip().startswith("$"):
            name = value.strip()[1:]
            if name not in params:
                raise self.error(key, f"unknown parameter ${name}", value)
            return params[name]
        return value


def _all_kind_keys() -> dict[str, str]:
    return {k: v for keys in KIND_KEYS.values() for k, v in keys.items()}


def parse_rule(doc: LocatedYaml, overrides: dict[str, Any] | None = None) -> ir.Rule:
    r = _RuleReader(doc, overrides or {})
    for key in REQUIRED:
        if key not in r.data:
            raise RuleError(f"missing required key '{key}' ({COMMON_KEYS[key]})", path=r.path, line=1, field=key)
    kind = r.text("kind")
    if kind not in KIND_KEYS:
        raise r.error("kind", f"unknown rule kind '{kind}' (expected one of: {', '.join(KIND_KEYS)})", kind)
    allowed = COMMON_KEYS | KIND_KEYS[kind]
    for key in r.data:
        if key not in allowed:
            raise r.error(str(key), f"unknown key '{key}' for a {kind} rule (allowed: {', '.join(allowed)})", key)

    rid = r.text("id")
    if not _ID.match(rid):
        raise r.error("id", f"rule id {rid!r} may hold only a-z, 0-9, '.', '_' and '-'", rid)
    version = r.data["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise r.error("version", f"version must be a whole number >= 1, got {version!r}", version)
    severity = r.text("severity")
    if severity not in ir.SEVERITIES:
        raise r.error("severity", f"severity must be one of {', '.join(ir.SEVERITIES)}", severity)

    params = _params(r)
    group_by = _group_by(r)
    match_scope = r.scope("match", params)
    match = to_predicate(r.text("match", "true"), match_scope)
    meta = ir.RuleMeta(
        id=rid,
        version=version,
        title=r.text("title"),
        description=r.text("description", ""),
        severity=severity,
        legal_basis=r.text("legal_basis", ""),
        owner=r.text("owner", ""),
        rationale=r.text("rationale", ""),
        kind=kind,
        path=r.path,
        reason=r.text("reason") if "reason" in r.data else None,
        params=tuple(params.items()),
    )
    rule: ir.Rule
    if kind == "condition":
        cond_scope = r.scope("condition", params)
        condition = to_predicate(r.text("condition"), cond_scope)
        read = match_scope.fields_read | cond_scope.fields_read
        shown = tuple(c for c in EVENT_FIELDS if c in read and c not in IDENTIFIER_FIELDS)
        shown += tuple(sorted(f for f in read if f.startswith("attrs.")))
        rule = ir.ConditionRule(meta, match, group_by, condition, shown)
        names = set(shown)
    else:
        window_text, window_us = _window(r, params)
        if kind == "window":
            aggregates, having = _aggregates(r, params, group_by)
        else:
            match, aggregates, having = _basket(r, params, match)
        rule = ir.WindowRule(meta, match, group_by, window_us, aggregates, having, window_text)
        names = {name for name, _ in aggregates} | {"window"}
    _check_reason(r, names | set(params) | {"group"})
    return rule


def _params(r: _RuleReader) -> dict[str, ir.Value]:
    raw = r.data.get("params") or {}
    if not isinstance(raw, dict):
        raise r.error("params", "params must be a mapping of name: value", raw)
    for name in r.overrides:
        if name not in raw:
            rid = r.data.get("id")
            raise RuleError(
                f"rule '{rid}' has no parameter '{name}' (it has: {', '.join(map(str, raw)) or 'none'})",
                field=f"{rid}.{name}",
                value=r.overrides[name],
            )
    params: dict[str, ir.Value] = {}
    for name, value in {**raw, **r.overrides}.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            raise r.error(f"params.{name}", f"bad parameter name {name!r}", name)
        if isinstance(value, dict | list) or value is None:
            raise r.error(f"params.{name}", f"parameter {name} must be a number, text or true/false", value)
        params[str(name)] = _param_value(value)
    return params


def _group_by(r: _RuleReader) -> tuple[str, ...]:
    raw = r.data.get("group_by", ["actor"])
    fields = [raw] if isinstance(raw, str) else raw
    if not isinstance(fields, list) or not fields:
        raise r.error("group_by", "group_by must be a list of fields, e.g. [actor]", raw)
    for f in fields:
        col = EVENT_FIELDS.get(str(f))
        if col is None or col.type != "string" or f in ("event_id",):
            allowed = ", ".join(c.name for c in EVENT_FIELDS.values() if c.type == "string" and c.name != "event_id")
            raise r.error("group_by", f"cannot group by '{f}' (text fields: {allowed})", f)
    return tuple(str(f) for f in fields)


def _window(r: _RuleReader, params: dict[str, ir.Value]) -> tuple[str, int]:
    value = r.resolve("window", params)
    if value is None:
        raise r.error("window", "'window' is required, e.g. window: 7d")
    try:
        return str(value).strip(), parse_duration(value)
    except ValueError as exc:
        raise r.error("window", str(exc), value) from exc


def _aggregates(
    r: _RuleReader, params: dict[str, ir.Value], group_by: tuple[str, ...]
) -> tuple[tuple[tuple[str, ir.Aggregate], ...], ir.Expr]:
    raw = r.data.get("aggregates")
    if not isinstance(raw, dict) or not raw:
        raise r.error("aggregates", "aggregates must map names to aggregates, e.g. total: sum(amount)", raw)
    aggregates: list[tuple[str, ir.Aggregate]] = []
    types: dict[str, ir.ValueType] = {}
    for name, text in raw.items():
        key = f"aggregates.{name}"
        if not re.match(r"^[a-z_][a-z0-9_]*$", str(name)) or name in EVENT_FIELDS or name in ("window", "group"):
            raise r.error(key, f"aggregate name {name!r} must be lower_case and not a field name", name)
        scope = Scope(path=r.path, line=r.doc.line("aggregates", name), field=key, params=params)
        agg, typ = to_aggregate(str(text), scope)
        aggregates.append((str(name), agg))
        types[str(name)] = typ
    having = to_predicate(r.text("having"), r.scope("having", params, aggregates=types, group_only=group_by))
    return tuple(aggregates), having


def _basket(
    r: _RuleReader, params: dict[str, ir.Value], match: ir.Expr
) -> tuple[ir.Expr, tuple[tuple[str, ir.Aggregate], ...], ir.Expr]:
    """A basket is a window rule: count the distinct listed categories in the window."""
    field_name = str(r.data.get("field", "category"))
    if field_name not in EVENT_FIELDS or EVENT_FIELDS[field_name].type != "string":
        raise r.error("field", f"basket field must be a text event field, not {field_name!r}", field_name)
    cats = r.data.get("categories")
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
        raise r.error("categories", "categories must be a non-empty list of text values", cats)
    k = r.resolve("min_distinct", params)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(cats):
        raise r.error("min_distinct", f"min_distinct must be a whole number from 1 to {len(cats)}", k)
    target = ir.Field(field_name)
    in_basket = ir.InList(target, tuple(ir.Literal(c) for c in dict.fromkeys(cats)))
    match = in_basket if match == ir.TRUE else ir.Logical("and", match, in_basket)
    aggregates = (("distinct", ir.Aggregate("count_distinct", target)), ("events", ir.Aggregate("count", None)))
    having = ir.Compare(">=", ir.AggregateRef("distinct"), ir.Literal(k))
    return match, aggregates, having


def _check_reason(r: _RuleReader, names: set[str]) -> None:
    template = r.data.get("reason")
    if template is None:
        return
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(str(template)) if f is not None]
    except ValueError as exc:
        raise r.error("reason", f"bad reason template: {exc}", template) from exc
    for name in used:
        if name not in names:
            raise r.error("reason", f"reason uses {{{name}}}, which the rule does not compute "
                          f"(available: {', '.join(sorted(names))})", template)
