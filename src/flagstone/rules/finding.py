"""What every back end returns for one firing of a rule, before it becomes a stored alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flagstone.rules.ir import Value

EventKey = tuple[str, str]  # (source, event_id): unique in the store


@dataclass(frozen=True)
class Finding:
    """One alert as computed: the group, the firing event, the evidence and the numbers.

    ``evidence`` is in event order ``(ts, event_id, source)``; ``values`` maps each aggregate (or,
    for condition rules, each field the rule reads) to its value at the firing event.
    """

    rule_id: str
    rule_version: int
    group: tuple[tuple[str, str], ...]  # ((field, value), ...) in group_by order
    fire: EventKey
    first_ts: datetime
    last_ts: datetime
    evidence: tuple[EventKey, ...]
    values: tuple[tuple[str, Value], ...]

    @property
    def group_key(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.group)

    @property
    def values_dict(self) -> dict[str, Value]:
        return dict(self.values)
