"""Rule files (YAML) -> intermediate form, with every error naming file, line and field."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagstone._yaml import LocatedYaml, load_located, load_text
from flagstone.config import load_config
from flagstone.errors import RuleError
from flagstone.protected import PROTECTED_REFUSAL, configured_match, protected_match
from flagstone.rules import ir, legs
from flagstone.rules.expressions import to_predicate
from flagstone.rules.kinds import KINDS
from flagstone.rules.reader import (
    COMMON_KEYS,
    Common,
    RuleReader,
    check_reason,
    param_value,
    parse_duration,
    read_group_by,
    read_params,
    read_profiles,
)

REQUIRED = ("id", "version", "title", "severity", "kind")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


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
    protected: Sequence[str] | None = None,
) -> RuleSet:
    """Load rule files and packs; apply per-deployment parameters; refuse duplicate ids, and rules
    reading a special category or a field the configuration marks protected (``protected``; by
    default the deployment's ``protected_fields`` and declared special columns)."""
    deployment = _deployment_params(params_file, overrides)
    if protected is None:
        protected = load_config().unreadable_by_rules()
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
        _refuse_protected(rule, protected, path)
        seen[rule.meta.id] = str(path)
        rules.append(rule)
    for rid in deployment:
        if rid not in seen:
            raise RuleError(f"parameters given for unknown rule '{rid}'", path=params_file, field=rid)
    return RuleSet(tuple(rules))


def _refuse_protected(rule: ir.Rule, protected: Sequence[str], path: Path) -> None:
    """Every field the rule reads, its profiles' reads included: a special-category name (attributes
    are refused by name already while parsing; this also covers profile names), or a configured one."""
    for ref in sorted(ir.rule_references(rule)):
        line = _first_line_naming(path, ref) or _first_line_naming(path, ref.rpartition(".")[2])
        if (stem := protected_match(ref.rpartition(".")[2])) is not None:
            raise RuleError(
                f"rule '{rule.meta.id}' reads '{ref}', which looks like a protected attribute ('{stem}'): "
                + PROTECTED_REFUSAL,
                path=path,
                line=line,
                field=ref,
            )
        if (name := configured_match(ref, protected)) is not None:
            raise RuleError(
                f"rule '{rule.meta.id}' reads '{ref}', which the configuration marks protected ('{name}'): "
                "rules may not use protected attributes",
                path=path,
                line=line,
                field=ref,
            )


def _first_line_naming(path: Path, word: str) -> int | None:
    pattern = re.compile(rf"(?<![\w.]){re.escape(word)}\b")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if pattern.search(line) and not line.startswith(("id:", "title:", "description:")):
            return n
    return None


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
        merged.setdefault(rid, {})[name] = load_text(raw, f"--set {key.strip()}", RuleError).data
    return merged


def _param_set(r: RuleReader, params: dict[str, ir.ParamValue]) -> str:
    """ "" for the file's own parameters, else 12 hex digits of a digest of all effective ones."""
    own = r.data.get("params") or {}
    if all(params[name] == param_value(own[name]) for name in r.overrides):
        return ""
    canonical = json.dumps({k: str(v) for k, v in sorted(params.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _typologies(r: RuleReader) -> tuple[str, ...]:
    """``typology``: one name or a list of names (labels' spelling), each like a rule id."""
    raw = r.data.get("typology")
    if raw is None:
        return ()
    names = raw if isinstance(raw, list) else [raw]
    for name in names:
        if not isinstance(name, str) or not _ID.match(name):
            raise r.error("typology", f"a typology is a name of a-z, 0-9, '.', '_' and '-', got {name!r}", name)
    if not names:
        raise r.error("typology", "an empty list: name at least one typology or leave the key out", raw)
    return tuple(dict.fromkeys(names))


def parse_rule(doc: LocatedYaml, overrides: dict[str, Any] | None = None) -> ir.Rule:
    r = RuleReader(doc, overrides or {})
    for key in REQUIRED:
        if key not in r.data:
            raise RuleError(f"missing required key '{key}' ({COMMON_KEYS[key]})", path=r.path, line=1, field=key)
    kind = r.text("kind")
    if kind not in KINDS:
        raise r.error("kind", f"unknown rule kind '{kind}' (expected one of: {', '.join(KINDS)})", kind)
    allowed = COMMON_KEYS | KINDS[kind].keys
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

    params = read_params(r)
    group_by = read_group_by(r, legs.declared(r))
    r.profiles.update(read_profiles(r, params))
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
        typologies=_typologies(r),
        param_set=_param_set(r, params),
    )
    rule, names = KINDS[kind].build(Common(r, meta, match, group_by, params, match_scope))
    check_reason(r, names | set(params) | {"group"})
    return rule


__all__ = ["KINDS", "RuleSet", "load_rules", "parse_duration", "parse_rule", "rule_files"]
