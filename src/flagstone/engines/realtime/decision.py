"""What every real-time scorer shares: the event order, what one event did (``Decision``), and
the finding an alert is made from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flagstone.rules import ir
from flagstone.rules.finding import Finding

ENGINE = "realtime"
Event = Mapping[str, Any]
OrderKey = tuple[datetime, str, str]


def order_key(event: Event) -> OrderKey:
    return (event["ts"], event["event_id"], event["source"])


@dataclass
class Decision:
    """What one event did: alerts it fired, episode alerts whose evidence it extended."""

    fired: list[Finding] = field(default_factory=list)
    updated: list[Finding] = field(default_factory=list)
    late: bool = False  # too old to be tested, for every rule or for one of its groups


def finding(
    meta: ir.RuleMeta,
    group_by: Sequence[str],
    key: tuple[Any, ...],
    fire: Event,
    evidence: Sequence[OrderKey],
    values: dict[str, Any],
) -> Finding:
    """The finding of ``fire`` in group ``key``, with its evidence (in event order) and values."""
    return Finding(
        rule_id=meta.id,
        rule_version=meta.version,
        group=tuple(zip(group_by, key, strict=True)),
        fire=(fire["source"], fire["event_id"]),
        first_ts=evidence[0][0],
        last_ts=fire["ts"],
        evidence=tuple((source, event_id) for _, event_id, source in evidence),
        values=tuple(values.items()),
    )
