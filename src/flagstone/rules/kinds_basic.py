"""The first rule kinds: single-event conditions, sliding-window aggregates and baskets."""

from __future__ import annotations

import re
from typing import Literal

from flagstone.events import EVENT_FIELDS, IDENTIFIER_FIELDS
from flagstone.rules import ir
from flagstone.rules.expressions import Scope, to_aggregate, to_predicate
from flagstone.rules.reader import Common, Kind, RuleReader, read_window


def build_condition(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    cond_scope = r.scope("condition", c.params)
    condition = to_predicate(r.text("condition"), cond_scope)
    read = c.match_scope.fields_read | cond_scope.fields_read
    shown = tuple(f for f in EVENT_FIELDS if f in read and f not in IDENTIFIER_FIELDS)
    shown += tuple(sorted(f for f in read if f.startswith("attrs.")))
    return ir.ConditionRule(c.meta, c.match, c.group_by, condition, shown), set(shown)


def build_window(c: Common) -> tuple[ir.Rule, set[str]]:
    window_text, window_us = read_window(c.reader, c.params)
    aggregates, having = _aggregates(c.reader, c.params, c.group_by)
    rule = ir.WindowRule(
        c.meta, c.match, c.group_by, window_us, aggregates, having, window_text, read_evidence(c.reader)
    )
    return rule, {name for name, _ in aggregates} | {"window"}


def read_evidence(r: RuleReader) -> Literal["window", "episode"]:
    value = r.data.get("evidence", "window")
    if value not in ("window", "episode"):
        raise r.error("evidence", "evidence must be 'window' or 'episode'", value)
    return value  # type: ignore[no-any-return]


def build_basket(c: Common) -> tuple[ir.Rule, set[str]]:
    window_text, window_us = read_window(c.reader, c.params)
    match, aggregates, having = _basket(c.reader, c.params, c.match)
    rule = ir.WindowRule(c.meta, match, c.group_by, window_us, aggregates, having, window_text, read_evidence(c.reader))
    return rule, {name for name, _ in aggregates} | {"window"}


def _aggregates(
    r: RuleReader, params: dict[str, ir.Value], group_by: tuple[str, ...]
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
    r: RuleReader, params: dict[str, ir.Value], match: ir.Expr
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



CONDITION = Kind({"condition": "expression tested on each matched event"}, build_condition)
WINDOW = Kind(
    {
        "window": "length W of the sliding window, e.g. 7d, 24h, 30m",
        "aggregates": "name: aggregate, e.g. total: sum(amount)",
        "having": "expression over the aggregates that makes the rule fire",
        "evidence": "window (default): the firing window; episode: every event of the episode's windows",
    },
    build_window,
)
BASKET = Kind(
    {
        "window": "length W of the sliding window",
        "field": "the field holding the category; default category",
        "categories": "list of category values that count",
        "min_distinct": "fire when at least this many different categories fall in one window",
        "evidence": "window (default): the firing window; episode: every event of the episode's windows",
    },
    build_basket,
)
