"""DuckDB statement for the ``model`` kind: the candidates and their features (engines/detector.py)
over the rule's matched events. The engine scores them (``rules.kinds.model.detect``)."""

from __future__ import annotations

from flagstone.engines.detector import candidate_sql
from flagstone.engines.duckdb.sql import event_sql, from_events
from flagstone.rules.kinds.model import ModelRule


def model_sql(rule: ModelRule, events: str, entities: str) -> str:
    matched = (
        "(SELECT e.source, e.event_id, e.ts, e.actor, e.counterparty, e.amount, e.kind, e.channel "
        f"{from_events(events, entities, rule.match)} WHERE coalesce({event_sql(rule.match)}, FALSE))"
    )
    return candidate_sql(matched, rule.window_us)
