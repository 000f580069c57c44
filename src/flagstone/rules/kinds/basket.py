"""The ``basket`` rule kind: several different listed categories within one window. A basket is
a window rule (count the distinct listed categories), so it shares that kind's typed form, oracle
and engine builders."""

from __future__ import annotations

from flagstone.events import EVENT_FIELDS
from flagstone.rules import ir
from flagstone.rules.kinds.window import EVIDENCE_KEY, WindowRule, read_evidence, run_window
from flagstone.rules.reader import Common, RuleKind, RuleReader, read_window


def build_basket(c: Common) -> tuple[ir.Rule, set[str]]:
    window_text, window_us = read_window(c.reader, c.params)
    match, aggregates, having = _basket(c.reader, c.params, c.match)
    rule = WindowRule(c.meta, match, c.group_by, window_us, aggregates, having, window_text, read_evidence(c.reader))
    return rule, {name for name, _ in aggregates} | {"window"}


def _basket(
    r: RuleReader, params: dict[str, ir.ParamValue], match: ir.Expr
) -> tuple[ir.Expr, tuple[tuple[str, ir.Aggregate], ...], ir.Expr]:
    """A basket is a window rule: count the distinct listed categories in the window."""
    field_name = str(r.data.get("field", "category"))
    if field_name not in EVENT_FIELDS or EVENT_FIELDS[field_name].type != "string":
        raise r.error("field", f"basket field must be a text event field, not {field_name!r}", field_name)
    cats = _categories(r, params)
    k = r.resolve("min_distinct", params)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(cats):
        raise r.error("min_distinct", f"min_distinct must be a whole number from 1 to {len(cats)}", k)
    target = ir.Field(field_name)
    in_basket = ir.InList(target, tuple(ir.Literal(c) for c in cats))
    match = in_basket if match == ir.TRUE else ir.Logical("and", match, in_basket)
    aggregates = (("distinct", ir.Aggregate("count_distinct", target)), ("events", ir.Aggregate("count", None)))
    having = ir.Compare(">=", ir.AggregateRef("distinct"), ir.Literal(k))
    return match, aggregates, having


def _categories(r: RuleReader, params: dict[str, ir.ParamValue]) -> list[str]:
    """``categories``: a list of text values and ``$name`` parameters (each one text or a list of
    them), or one list parameter; flattened in order, so a deployment can replace one list."""
    raw = r.data.get("categories")
    items = raw if isinstance(raw, list) else [raw]
    cats: list[str] = []
    for item in items:
        value: object = item
        if isinstance(item, str) and item.strip().startswith("$"):
            name = item.strip()[1:]
            if name not in params:
                raise r.error("categories", f"unknown parameter ${name} (parameters: {', '.join(params)})", item)
            value = params[name]
        elif not isinstance(raw, list):
            break  # one value that is not a $parameter: refused below
        values = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(v, str) for v in values):
            raise r.error("categories", f"categories are text values, not {item!r}", item)
        cats.extend(str(v) for v in values)
    if not cats:
        raise r.error("categories", "categories must be a non-empty list of text values or $parameters", raw)
    return list(dict.fromkeys(cats))


KIND = RuleKind(
    "basket",
    WindowRule,
    {
        "window": "length W of the sliding window",
        "field": "the field holding the category; default category",
        "categories": "category values that count: a list of text and $parameters (lists too), or one $list",
        "min_distinct": "fire when at least this many different categories fall in one window",
        "evidence": EVIDENCE_KEY,
    },
    build_basket,
    run_window,
)
