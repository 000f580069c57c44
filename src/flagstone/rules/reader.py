"""Reading one rule document: the shared parts every kind needs, and the kind registry's types.

A rule kind is a ``RuleKind``: the keys it adds to a rule file and a ``build`` function that turns
the already-parsed common parts (``Common``) into its intermediate-form rule. Each kind lives in
its own module of ``flagstone.rules.kinds`` and is registered once in that package.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flagstone._yaml import LocatedYaml
from flagstone.errors import RuleError
from flagstone.events import ENTITY_FIELDS, EVENT_FIELDS
from flagstone.rules import ir
from flagstone.rules.expressions import Scope, convert, parse_text, to_predicate
from flagstone.rules.finding import Finding

COMMON_KEYS = {
    "id": "unique rule id, e.g. aml.structuring",
    "version": "whole number, raised on every change",
    "title": "one line",
    "description": "what the rule finds",
    "rationale": "why the pattern indicates the crime",
    "severity": "low | medium | high | critical",
    "legal_basis": "the law or guidance the rule serves",
    "owner": "team responsible for the rule",
    "kind": "the rule kind (see docs/rules.md)",
    "params": "named thresholds, used as $name, overridable per deployment",
    "match": "which events the rule looks at (expression); default: all",
    "profiles": "named per-account measures over the scanned events, read as actor.<name> / counterparty.<name>",
    "group_by": "fields whose values make a group; default [actor]",
    "reason": "one-sentence explanation with {placeholders}",
    "typology": "the typology (or list of typologies) the rule targets, as labels name them",
}
_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|m|h|d|w)\s*$")
_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_UNIT_US["w"] = 7 * _UNIT_US["d"]


def parse_duration(text: Any) -> int:
    """``7d`` -> microseconds. Units: us, ms, s, m, h, d, w."""
    m = _DURATION.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h, 7d")
    return int(m.group(1)) * _UNIT_US[m.group(2)]


def param_value(value: Any) -> ir.ParamValue:
    # YAML floats become exact decimals: a threshold of 0.1 must mean 0.1 on every engine.
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):  # a list parameter (checked by read_params)
        return tuple(param_value(v) for v in value)  # type: ignore[misc]
    return value  # type: ignore[no-any-return]


class RuleReader:
    """Reads one rule document; knows where each key was, for errors."""

    def __init__(self, doc: LocatedYaml, overrides: dict[str, Any]) -> None:
        self.doc = doc
        self.path = str(doc.path)
        if not isinstance(doc.data, dict):
            raise RuleError("a rule file holds one mapping of keys (id, version, kind, ...)", path=self.path)
        self.data: dict[str, Any] = doc.data
        self.overrides = overrides
        self.profiles: dict[str, ir.Profile] = {}

    def error(self, key: str, message: str, value: Any = None) -> RuleError:
        return RuleError(message, path=self.path, line=self.doc.line(*key.split(".")), field=key, value=value)

    def scope(self, key: str, params: dict[str, ir.ParamValue], **kw: Any) -> Scope:
        kw.setdefault("profiles", self.profiles)
        return Scope(path=self.path, line=self.doc.line(key), field=key, params=params, **kw)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, f"'{key}' is required")
        if isinstance(value, dict | list):
            raise self.error(key, f"'{key}' must be text", value)
        return str(value).strip()

    def resolve(self, key: str, params: dict[str, ir.ParamValue]) -> Any:
        """A value that may be written as $param."""
        value = self.data.get(key)
        if isinstance(value, str) and value.strip().startswith("$"):
            name = value.strip()[1:]
            if name not in params:
                raise self.error(key, f"unknown parameter ${name}", value)
            return params[name]
        return value


@dataclass(frozen=True)
class Common:
    """What every rule has, parsed: its reader (for errors), metadata, match, groups, parameters."""

    reader: RuleReader
    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    params: dict[str, ir.ParamValue]
    match_scope: Scope


Oracle = Callable[[Any, list[Mapping[str, Any]], Mapping[str, Mapping[str, Any]]], list[Finding]]


@dataclass(frozen=True)
class RuleKind:
    """A rule kind as ``flagstone.rules.kinds`` registers it: the name rule files give in ``kind``,
    the typed rule it builds, its own keys (name -> meaning), how to build its rule, and its
    plain-Python definition (the oracle: ``oracle(rule, events, entities)`` -> findings).

    ``build`` returns the rule and the names its ``reason`` template may use (besides parameters
    and ``{group}``).
    """

    name: str
    rule: type
    keys: dict[str, str]
    build: Callable[[Common], tuple[ir.Rule, set[str]]]
    oracle: Oracle


def read_params(r: RuleReader) -> dict[str, ir.ParamValue]:
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
    params: dict[str, ir.ParamValue] = {}
    for name, value in {**raw, **r.overrides}.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            raise r.error(f"params.{name}", f"bad parameter name {name!r}", name)
        params[str(name)] = _param(r, str(name), value, raw.get(name))
    return params


def _param(r: RuleReader, name: str, value: Any, default: Any) -> ir.ParamValue:
    """One value, or a non-empty list of them; a deployment keeps the shape the rule file gives."""
    where = f"params.{name}"
    if isinstance(value, list):
        if not value or not all(_scalar(v) and not isinstance(v, bool) for v in value):
            raise r.error(where, f"parameter {name} must be a non-empty list of numbers or text", value)
        if len({type(param_value(v)) is str for v in value}) > 1:
            raise r.error(where, f"parameter {name} mixes text and numbers", value)
        if default is not None and not isinstance(default, list):
            raise r.error(where, f"parameter {name} is one value in the rule file, not a list", value)
        return param_value(value)
    if not _scalar(value):
        raise r.error(where, f"parameter {name} must be a number, text, true/false or a list", value)
    if isinstance(default, list):
        raise r.error(where, f"parameter {name} is a list in the rule file; give a list, e.g. [a, b]", value)
    return param_value(value)


def _scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, dict | list)


PROFILE_KEYS = {
    "match": "which events count (expression over event fields and attrs); the entity is their actor",
    "relative": "true: divide the count by the median count over every actor; default false",
}


def read_profiles(r: RuleReader, params: dict[str, ir.ParamValue]) -> dict[str, ir.Profile]:
    """``profiles: {name: {match: ..., relative: true}}``: per-account measures (docs/rules.md)."""
    raw = r.data.get("profiles") or {}
    if not isinstance(raw, dict):
        raise r.error("profiles", "profiles must be a mapping of name: {match: ..., relative: ...}", raw)
    out: dict[str, ir.Profile] = {}
    for name, spec in raw.items():
        key = f"profiles.{name}"
        if not re.match(r"^[a-z_][a-z0-9_]*$", str(name)) or name in ENTITY_FIELDS:
            raise r.error(key, f"profile name {name!r} must be lower-case a-z, 0-9, _ and not an entity column", name)
        if not isinstance(spec, dict) or "match" not in spec:
            raise r.error(key, "a profile needs at least match: <expression>", spec)
        for k in spec:
            if k not in PROFILE_KEYS:
                raise r.error(f"{key}.{k}", f"unknown profile key '{k}' (allowed: {', '.join(PROFILE_KEYS)})", k)
        relative = spec.get("relative", False)
        if not isinstance(relative, bool):
            raise r.error(f"{key}.relative", "relative must be true or false", relative)
        scope = Scope(path=r.path, line=r.doc.line("profiles", str(name), "match"), field=f"{key}.match", params=params)
        match = to_predicate(str(spec["match"]), scope)
        if any(isinstance(n, ir.EntityField) for n in ir.walk(match)):
            raise r.error(f"{key}.match", "a profile's match reads event fields and attrs only", spec["match"])
        out[str(name)] = ir.Profile(str(name), match, relative)
    return out


def read_group_by(r: RuleReader, legs: Mapping[str, ir.ValueType] | None = None) -> tuple[str, ...]:
    """``group_by``; with the account view (``legs``: its fields) also by a leg field, and by
    default by ``account``, the account whose legs are read."""
    legs = legs or {}
    raw = r.data.get("group_by", ["account"] if legs else ["actor"])
    fields = [raw] if isinstance(raw, str) else raw
    if not isinstance(fields, list) or not fields:
        raise r.error("group_by", "group_by must be a list of fields, e.g. [actor]", raw)
    for f in fields:
        if isinstance(f, str) and f in legs:
            continue
        col = EVENT_FIELDS.get(str(f))
        if col is None or col.type != "string" or f in ("event_id",):
            text = [c.name for c in EVENT_FIELDS.values() if c.type == "string" and c.name != "event_id"]
            allowed = ", ".join([*text, *legs])
            raise r.error("group_by", f"cannot group by '{f}' (text fields: {allowed})", f)
    return tuple(str(f) for f in fields)


def read_window(r: RuleReader, params: dict[str, ir.ParamValue]) -> tuple[str, int]:
    value = r.resolve("window", params)
    if value is None:
        raise r.error("window", "'window' is required, e.g. window: 7d")
    try:
        return str(value).strip(), parse_duration(value)
    except ValueError as exc:
        raise r.error("window", str(exc), value) from exc


def read_duration(r: RuleReader, key: str, params: dict[str, ir.ParamValue]) -> tuple[str, int]:
    """A required duration key (``within: 48h`` or ``within: $param``)."""
    value = r.resolve(key, params)
    if value is None:
        raise r.error(key, f"'{key}' is required, e.g. {key}: 48h")
    try:
        return str(value).strip(), parse_duration(value)
    except ValueError as exc:
        raise r.error(key, str(exc), value) from exc


def read_count(r: RuleReader, key: str, params: dict[str, ir.ParamValue]) -> int:
    value = r.resolve(key, params)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise r.error(key, f"'{key}' must be a whole number >= 1", value)
    return value


def read_number_expr(r: RuleReader, key: str, params: dict[str, ir.ParamValue], default: str) -> ir.Expr:
    scope = r.scope(key, params)
    text = r.text(key, default)
    node, typ = convert(parse_text(text, scope), scope)
    if typ not in ("number", "null"):
        raise scope.error(f"'{key}' must be a number, but {text!r} is a {typ}", text)
    return node


def check_reason(r: RuleReader, names: set[str]) -> None:
    template = r.data.get("reason")
    if template is None:
        return
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(str(template)) if f is not None]
    except ValueError as exc:
        raise r.error("reason", f"bad reason template: {exc}", template) from exc
    for name in used:
        if name not in names:
            raise r.error(
                "reason",
                f"reason uses {{{name}}}, which the rule does not compute (available: {', '.join(sorted(names))})",
                template,
            )
