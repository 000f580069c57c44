"""The account view (``ir.AccountView``): its key in a rule file and its plain-Python definition,
which the oracle uses and every engine must match (``docs/rules.md``, "The account view").

A rule that declares ``accounts`` reads *legs* instead of events: each matched event as seen from
an account it moves money between. Ledgers that book a transfer once, on the payer (one row per
transfer: ``actor`` pays ``counterparty``), and ledgers that book it on both accounts (a debit on
the payer, a credit on the payee) give each account the same legs, each movement once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from flagstone.rules import ir
from flagstone.rules.evaluator import Context, Entities, Event, evaluate, order_key
from flagstone.rules.expressions import Scope, to_predicate
from flagstone.rules.reader import RuleReader

KEY = "accounts"
ACCOUNT_KEYS = {
    "incoming": "expression over an event: true when it is booked on the account that receives the money "
    "(e.g. kind in ('credit', 'cash_deposit')); every other event is booked on the account that pays",
}


def declared(r: RuleReader) -> Mapping[str, ir.ValueType]:
    """The leg fields a rule may group by and read, when it declares the account view."""
    return ir.LEG_FIELDS if KEY in r.data else {}


def read_accounts(r: RuleReader, params: dict[str, ir.ParamValue]) -> ir.AccountView | None:
    """``accounts: {incoming: <expression>}``, or None when the rule does not declare the view."""
    if KEY not in r.data:
        return None
    raw = r.data[KEY]
    if not isinstance(raw, dict) or "incoming" not in raw:
        raise r.error(KEY, "accounts needs incoming: <expression> (which events are booked on the payee)", raw)
    for k in raw:
        if k not in ACCOUNT_KEYS:
            raise r.error(f"{KEY}.{k}", f"unknown key '{k}' under accounts (allowed: {', '.join(ACCOUNT_KEYS)})", k)
    field = f"{KEY}.incoming"
    scope = Scope(path=r.path, line=r.doc.line(KEY, "incoming"), field=field, params=params, profiles=r.profiles)
    return ir.AccountView(to_predicate(str(raw["incoming"]), scope))


def account_legs(view: ir.AccountView, events: list[Event], entities: Entities) -> list[Event]:
    """Every leg of ``events`` (the rule's matched events), by the definition in ``ir.AccountView``."""
    legs: list[dict[str, Any]] = []
    # A payee's incoming legs of one movement, by (account, other, ts, amount, currency): its own
    # bookings and those derived from the payer's, each list in event order.
    own: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    derived: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(events, key=order_key):
        incoming = evaluate(view.incoming, Context(e, entities)) is True
        actor, other = e.get("actor"), e.get("counterparty")
        if actor is not None:
            leg = {**e, "account": actor, "other": other, "direction": "in" if incoming else "out"}
            legs.append(leg)
            if incoming and other is not None:
                own[_movement(leg)].append(leg)
        if not incoming and other is not None and other != actor:
            leg = {**e, "account": other, "other": actor, "direction": "in"}
            legs.append(leg)
            if actor is not None:
                derived[_movement(leg)].append(leg)
    left_out: set[int] = set()
    for key, mine in own.items():
        for a, b in zip(mine, derived.get(key, []), strict=False):  # the i-th of each kind pair up
            left_out.add(id(max(a, b, key=order_key)))
    return [leg for leg in legs if id(leg) not in left_out]


def _movement(leg: Event) -> tuple[Any, ...]:
    return (leg["account"], leg["other"], leg["ts"], leg.get("amount"), leg.get("currency"))


__all__ = ["ACCOUNT_KEYS", "KEY", "account_legs", "declared", "read_accounts"]
