"""The service's request and response bodies: the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Record = dict[str, Any]


class EventRef(BaseModel):
    source: str
    event_id: str


class Alert(BaseModel):
    """One alert: which rule, why (the reason and the numbers), and the events behind it."""

    alert_id: str = Field(description="Stable id: the same rule version firing at the same event.")
    rule_id: str
    rule_version: int
    severity: Literal["low", "medium", "high", "critical"]
    group_key: str = Field(description="The group the rule counted over, e.g. `actor=pz_...` (pseudonymised).")
    reason: str = Field(description="The rule's explanation, with the computed numbers.")
    values: dict[str, Any] = Field(description="The computed values (decimals as text, exactly).")
    first_ts: str = Field(description="Time of the earliest evidence event (UTC, ISO 8601).")
    last_ts: str = Field(description="Time of the firing event (UTC, ISO 8601).")
    fire: EventRef = Field(description="The event at which the rule fired.")
    evidence: list[EventRef] = Field(description="Every event the alert is based on, in time order.")


class Decision(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    source: str
    event_id: str
    status: Literal["scored", "late", "duplicate"] = Field(
        description="scored: tested against every rule. late: older than its group's latest event (or than "
        "the allowed lateness); stored and counted in later windows, not tested. duplicate: stored before "
        "by a batch ingest; not scored again."
    )
    retry: bool = Field(description="True when the event was accepted before: this is the original decision.")
    alerts: list[Alert] = Field(description="Alerts this event fired.")
    updated_alerts: list[str] = Field(
        description="Ids of open episode alerts whose evidence this event extended (see GET /v1/alerts)."
    )


class Decisions(BaseModel):
    decisions: list[Decision]


class Problem(BaseModel):
    index: int | None = Field(description="Position of the offending event in the request, if one.")
    field: str | None = Field(description="The field (or request part) at fault.")
    value: str | None = Field(description="The value given, as text.")
    reason: str = Field(description="What was expected.")


class Problems(BaseModel):
    """Nothing of the request was applied."""

    detail: list[Problem]


class Unauthorized(BaseModel):
    detail: str


class Alerts(BaseModel):
    alerts: list[Alert]


class Health(BaseModel):
    status: Literal["ok", "degraded", "failed"] = Field(
        description="ok. degraded: the intake log cannot be absorbed into the store for now (answers go on; "
        "the log grows). failed: the service cannot store events any more and is stopping (503), so that a "
        "supervisor restarts it."
    )
    reason: str | None = Field(description="What is wrong, when not ok.")
    rules: int
    sources: list[str]
    events_in_state: int
