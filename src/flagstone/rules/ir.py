"""The rule intermediate form: small, typed, engine-neutral.

A rule file is parsed once into these nodes: the expression language here, and one typed rule per
kind in ``flagstone.rules.kinds``. Each back end (DuckDB, Spark, and the real-time scorer of
``engines/realtime``) maps node types to its own constructs, and the pure-Python oracle evaluates
them directly. Nothing here knows about SQL.

Semantics shared by every back end (``docs/rules.md`` says the same for users):

- Only events for which ``match`` is true take part; events with a NULL in any ``group_by`` field
  are left out. A group's events are ordered by ``(ts, event_id, source)``.
- The window of event *e* at time *t* holds the group's matched events *e'* with
  ``t - W < ts(e') <= t`` that are not after *e* in that order (ties in time: by ``event_id``).
- A rule's test (``condition`` or ``having``) is evaluated at every matched event; NULL counts as
  false. The rule fires at an event where the test holds and did not hold at the group's previous
  matched event: one alert per group per episode, re-armed when the test stops holding.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from typing import Literal as TypingLiteral
from typing import Protocol

ValueType = TypingLiteral["string", "number", "boolean", "timestamp", "null"]
Value = Decimal | int | float | str | bool | None
# A rule parameter: one value, or a list of them (``categories: $watched``, ``kind in $kinds``).
ParamValue = Value | tuple[Value, ...]

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ARITHMETIC = ("+", "-", "*", "/")
AGGREGATE_FUNCTIONS = ("count", "sum", "avg", "max", "min", "count_distinct")


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Field:
    """A canonical event column, e.g. ``amount``."""

    name: str


@dataclass(frozen=True)
class Attr:
    """A key of the event's ``attrs`` JSON object, read as text (``attrs.mcc``)."""

    name: str


@dataclass(frozen=True)
class Profile:
    """A per-entity measure computed from the scanned events, declared under a rule's ``profiles``.

    The value is the number of events matching ``match`` whose actor is the entity; with
    ``relative`` it is that count divided by the median count over every actor of the scanned
    events, truncated to 4 decimal places (NULL when the median is 0).
    """

    name: str
    match: Expr
    relative: bool = False


@dataclass(frozen=True)
class EntityField:
    """An attribute of the event's actor or counterparty (``actor.pep``): a reference-table column,
    or the rule's ``profile`` of that name."""

    role: TypingLiteral["actor", "counterparty"]
    name: str
    profile: Profile | None = None


@dataclass(frozen=True)
class AggregateRef:
    """The value of one of the rule's named aggregates, usable only in ``having``."""

    name: str


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class Negate:
    operand: Expr


@dataclass(frozen=True)
class Logical:
    op: TypingLiteral["and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare:
    op: str  # one of COMPARISONS
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Arithmetic:
    """``/`` yields a float; division by zero yields NULL on every engine."""

    op: str  # one of ARITHMETIC
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList:
    operand: Expr
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character, no escape character."""

    operand: Expr
    pattern: str
    negated: bool = False


Expr = (
    Literal
    | Field
    | Attr
    | EntityField
    | AggregateRef
    | Not
    | Negate
    | Logical
    | Compare
    | Arithmetic
    | InList
    | IsNull
    | Like
)

TRUE = Literal(True)


def walk(node: Expr) -> list[Expr]:
    """All nodes of an expression, depth first."""
    out: list[Expr] = [node]
    if isinstance(node, EntityField):
        return out  # a profile's own match runs over all events, not this one
    for child in vars(node).values():
        if isinstance(child, tuple):
            for c in child:
                if not isinstance(c, str):
                    out.extend(walk(c))
        elif not isinstance(child, str | bool | int | float | Decimal) and child is not None:
            out.extend(walk(child))
    return out


@dataclass(frozen=True)
class Aggregate:
    """``count(*)`` has ``arg=None``; every other aggregate ignores NULL inputs like SQL does.

    ``avg`` is ``sum / count`` as a float; ``sum``/``max``/``min`` of no non-NULL input is NULL.
    """

    function: str  # one of AGGREGATE_FUNCTIONS
    arg: Expr | None


@dataclass(frozen=True)
class AccountView:
    """A rule's events seen from the accounts they move money between (``docs/rules.md``, "The
    account view"), for ledgers that book a transfer once (on the payer) or twice (on both sides).

    Every matched event is a *leg* of the account it is booked on, its ``actor``: incoming when
    ``incoming`` is true (a credit), else outgoing. An outgoing event is also an incoming leg of
    its ``counterparty`` (when that differs from the actor), since a one-sided ledger has no other
    record of the money arriving. When the payee booked the same movement itself (an incoming
    event with the same time, other party, amount and currency), the payee's two incoming legs
    are paired, and of each pair the later in event order is left out: the money arrives once.
    Outgoing legs are always the account's own bookings. A leg holds its event's fields and the
    ``LEG_FIELDS``: ``account`` (whose leg), ``other`` (the other party) and ``direction``
    (``'in'`` or ``'out'``).
    """

    incoming: Expr


LEG_FIELDS: dict[str, ValueType] = {"account": "string", "other": "string", "direction": "string"}
LEG_IDENTIFIERS = ("account", "other")  # pseudonyms, like actor and counterparty: never shown as values


@dataclass(frozen=True)
class RuleMeta:
    id: str
    version: int
    title: str
    description: str
    severity: str
    legal_basis: str
    owner: str
    rationale: str
    kind: str  # as written in the file: condition | window | basket
    path: str
    reason: str | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()
    typologies: tuple[str, ...] = ()  # what it targets, as labels name typologies (``targets``)
    # "" when the parameters are the rule file's own; else a digest of the effective ones, which
    # then is part of the alerts' identity: other thresholds, other alerts (alerts.alert_id).
    param_set: str = ""

    @property
    def targets(self) -> tuple[str, ...]:
        """What the rule's alerts are meant to find: scenarios labelled with its own id, and the
        typologies it declares. Evaluation counts a hit on anything else as another rule's find."""
        return (self.id, *self.typologies)


class Rule(Protocol):
    """What every kind's rule has; each kind (``flagstone.rules.kinds``) adds its own fields."""

    @property
    def meta(self) -> RuleMeta: ...
    @property
    def match(self) -> Expr: ...
    @property
    def group_by(self) -> tuple[str, ...]: ...
    @property
    def value_names(self) -> tuple[str, ...]:
        """Names of the values each finding carries, in order (every engine returns these)."""
        ...


def rule_profiles(node: object) -> set[Profile]:
    """Every profile a rule (or any part of it) reads, wherever in the rule it is read."""
    if isinstance(node, EntityField):
        return {node.profile} if node.profile is not None else set()
    if isinstance(node, tuple | list):
        return set().union(*(rule_profiles(n) for n in node))
    if is_dataclass(node) and not isinstance(node, RuleMeta | type):
        return set().union(*(rule_profiles(getattr(node, f.name)) for f in fields(node)))
    return set()


def rule_expressions(node: object) -> list[Expr]:
    """The top-level expressions of a rule (match, condition, having, aggregate arguments ...)."""
    if isinstance(node, Expr):  # type: ignore[misc, arg-type]
        return [node]  # type: ignore[list-item]
    if isinstance(node, tuple | list):
        return [x for n in node for x in rule_expressions(n)]
    if is_dataclass(node) and not isinstance(node, RuleMeta | Profile | type):
        return [x for f in fields(node) for x in rule_expressions(getattr(node, f.name))]
    return []


def rule_references(node: object) -> set[str]:
    """Every field a rule's tree reads, as ``name``, ``attrs.name`` or ``role.name``, including
    what the rule's profiles read (``actor.devout`` reads whatever its ``match`` reads)."""
    out: set[str] = set()
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Field):
            out.add(item.name)
        elif isinstance(item, Attr):
            out.add(f"attrs.{item.name}")
        elif isinstance(item, EntityField):
            out.add(f"{item.role}.{item.name}")
            if item.profile is not None:
                stack.append(item.profile.match)
        elif is_dataclass(item) and not isinstance(item, type):
            for f in fields(item):
                value = getattr(item, f.name)
                if f.name == "group_by" and isinstance(value, tuple):
                    out.update(v for v in value if isinstance(v, str))
                stack.append(value)
        elif isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return out


SEVERITIES = ("low", "medium", "high", "critical")
