"""The deployment's configuration: one optional YAML file (``--config``, ``$FLAGSTONE_CONFIG``, or
``./flagstone.yaml`` when it exists). Every key has a default, so Flagstone runs without one.

Keys (all optional; see docs/oversight.md):

- ``protected_fields``: further fields no rule may read, beyond the built-in special categories,
  e.g. ``[attrs.nationality, actor.country]``; a bare name (``nationality``) matches it anywhere.
  No mapping may write them either, nor read a source column with a bare name listed here.
- ``declared_special_columns``: source columns the data protection officer has declared to hold
  special-category data, each with its purpose (``[{column: religion, purpose: ...}]``). A mapping
  may keep one only in ``attrs`` under its own name, which no rule may read.
- ``retention.days``: how long events are kept (default 1826, five years as AML law asks);
  ``retention.after_filing_days``: how long a filed report holds its evidence (default 1826).
- ``cases.filing_deadline_days``: days from detection to the filing deadline (default 30).
- ``cases.teams``: team name -> rule id prefixes it reviews; ``cases.default_team`` gets the rest.
- ``reporting_entity``: who files goAML reports (``rentity_id``, ``name``, ``branch``, ``currency``, ``country``).
- ``security``: ``lockout_attempts`` (5), ``lockout_minutes`` (15), ``address_lockout_attempts`` (20),
  ``address_lockout_minutes`` (15), ``session_hours`` (8), ``idle_minutes`` (30), ``secure_cookies``,
  ``single_admin`` (false: granting the supervisor or admin role needs a second admin; true lets one
  admin grant them alone, flagged in the audit log and on every page).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flagstone._yaml import load_located
from flagstone.errors import InputError

CONFIG_ENV = "FLAGSTONE_CONFIG"
DEFAULT_CONFIG = "flagstone.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retention(_Strict):
    days: int = Field(default=1826, ge=1)
    after_filing_days: int = Field(default=1826, ge=1)


class Cases(_Strict):
    filing_deadline_days: int = Field(default=30, ge=1, le=36_600)  # a century at most: sync adds it to dates
    teams: dict[str, list[str]] = Field(default_factory=dict)
    default_team: str = "compliance"

    def team_for(self, rule_id: str) -> str:
        """The team whose prefix matches ``rule_id`` longest; the default team otherwise."""
        best, length = self.default_team, -1
        for team, prefixes in self.teams.items():
            for p in prefixes:
                if rule_id.startswith(p) and len(p) > length:
                    best, length = team, len(p)
        return best


class ReportingEntityConfig(_Strict):
    rentity_id: int = Field(default=1, ge=1)
    name: str = "Flagstone demo bank"
    branch: str | None = None
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    country: str = Field(default="DE", pattern=r"^[A-Z]{2}$")


_YEAR_MINUTES = 366 * 24 * 60  # upper bounds keep every time Flagstone adds within datetime's range


class Security(_Strict):
    lockout_attempts: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1, le=_YEAR_MINUTES)
    address_lockout_attempts: int = Field(default=20, ge=1)
    address_lockout_minutes: int = Field(default=15, ge=1, le=_YEAR_MINUTES)
    session_hours: int = Field(default=8, ge=1, le=_YEAR_MINUTES // 60)
    idle_minutes: int = Field(default=30, ge=1, le=_YEAR_MINUTES)
    secure_cookies: bool = False
    single_admin: bool = False


class DeclaredColumn(_Strict):
    """A source column known to hold special-category data, and why the deployment receives it."""

    column: str = Field(min_length=1)
    purpose: str = Field(min_length=1, pattern=r"\S")
    source: str | None = None  # only this mapping's source; every source when absent


class Config(_Strict):
    protected_fields: list[str] = Field(default_factory=list)
    declared_special_columns: list[DeclaredColumn] = Field(default_factory=list)
    retention: Retention = Retention()
    cases: Cases = Cases()
    reporting_entity: ReportingEntityConfig = ReportingEntityConfig()
    security: Security = Security()
    path: str | None = None

    def unreadable_by_rules(self) -> list[str]:
        """The fields no rule may read beyond the built-in special categories: ``protected_fields``,
        and the attribute each declared special column may be kept as (``attrs.<column>``)."""
        return [*self.protected_fields, *(f"attrs.{d.column}" for d in self.declared_special_columns)]


def config_path(path: str | Path | None = None) -> Path | None:
    """``--config`` wins, then ``$FLAGSTONE_CONFIG``, then ``./flagstone.yaml`` if it exists."""
    if path is not None:
        return Path(path)
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def load_config(path: str | Path | None = None) -> Config:
    found = config_path(path)
    if found is None:
        return Config()
    if not found.exists():
        raise InputError("no such configuration file", path=found)
    doc = load_located(found)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise InputError("a configuration file holds one mapping of keys", path=found, line=1)
    try:
        return Config(**data, path=str(found))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise InputError(
            err["msg"], path=found, line=doc.line(*loc), field=".".join(map(str, loc)), value=err.get("input")
        ) from exc
