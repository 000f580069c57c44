"""Every action Flagstone audits, as a small typed event.

Each class names its ``action`` and the object it acts on (``target``); its other fields are the
details. :func:`flagstone.audit.record` is the only way an event reaches the log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class AuditEvent:
    action: ClassVar[str] = ""
    target_field: ClassVar[str] = ""

    @property
    def target(self) -> str:
        return str(getattr(self, self.target_field)) if self.target_field else ""

    def details(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop(self.target_field, None)
        return out


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ingested(AuditEvent):
    action = "ingest"
    target_field = "source"
    source: str
    file: str
    batch_id: int
    read: int
    loaded: int
    quarantined: int
    duplicates: int


@dataclass(frozen=True)
class Scanned(AuditEvent):
    action = "scan"
    target_field = "scan_id"
    scan_id: str
    engine: str
    rules: tuple[str, ...]
    alerts: int


@dataclass(frozen=True)
class RuleChanged(AuditEvent):
    """A rule seen with content it did not have at its last audited use (or for the first time)."""

    action = "rule_change"
    target_field = "rule_id"
    rule_id: str
    version: int
    sha256: str
    previous_sha256: str | None


@dataclass(frozen=True)
class Exported(AuditEvent):
    action = "export"
    target_field = "what"
    what: str
    destination: str
    rows: int


@dataclass(frozen=True)
class RetentionPurged(AuditEvent):
    action = "retention_purge"
    target_field = "store"
    store: str
    cutoff: str
    events: int
    held: int
    identities: int
    cases: int


# -- cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseCreated(AuditEvent):
    action = "case_created"
    target_field = "case_id"
    case_id: int
    alert_id: str
    rule_id: str
    team: str


@dataclass(frozen=True)
class AlertViewed(AuditEvent):
    action = "alert_viewed"
    target_field = "case_id"
    case_id: int
    alert_id: str


@dataclass(frozen=True)
class CaseAssigned(AuditEvent):
    action = "case_assigned"
    target_field = "case_id"
    case_id: int
    assignee: str


@dataclass(frozen=True)
class CaseCommented(AuditEvent):
    action = "case_commented"
    target_field = "case_id"
    case_id: int
    comment_id: int


@dataclass(frozen=True)
class CaseEscalated(AuditEvent):
    action = "case_escalated"
    target_field = "case_id"
    case_id: int
    note: str


@dataclass(frozen=True)
class CaseClosed(AuditEvent):
    action = "case_closed"
    target_field = "case_id"
    case_id: int
    outcome: str
    reason: str


@dataclass(frozen=True)
class IdentityRevealed(AuditEvent):
    action = "identity_revealed"
    target_field = "case_id"
    case_id: int
    pseudonym: str
    reason: str


@dataclass(frozen=True)
class ReportProposed(AuditEvent):
    action = "report_proposed"
    target_field = "case_id"
    case_id: int


@dataclass(frozen=True)
class ReportRejected(AuditEvent):
    action = "report_rejected"
    target_field = "case_id"
    case_id: int
    reason: str


@dataclass(frozen=True)
class ReportApproved(AuditEvent):
    action = "report_approved"
    target_field = "case_id"
    case_id: int
    proposer: str


@dataclass(frozen=True)
class ReportFiled(AuditEvent):
    action = "report_filed"
    target_field = "case_id"
    case_id: int
    sha256: str


# -- people -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedIn(AuditEvent):
    action = "login"
    target_field = "username"
    username: str


@dataclass(frozen=True)
class LoginFailed(AuditEvent):
    action = "login_failed"
    target_field = "username"
    username: str
    reason: str


@dataclass(frozen=True)
class LoggedOut(AuditEvent):
    action = "logout"
    target_field = "username"
    username: str


@dataclass(frozen=True)
class AuthorisationFailed(AuditEvent):
    action = "authorisation_failed"
    target_field = "resource"
    resource: str
    method: str
    reason: str


@dataclass(frozen=True)
class UserChanged(AuditEvent):
    action = "user_changed"
    target_field = "username"
    username: str
    change: str
    role: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class AuditVerified(AuditEvent):
    action = "audit_verified"
    target_field = "size"
    size: int
    ok: bool
    problems: tuple[str, ...] = field(default_factory=tuple)


def all_event_types() -> list[type[AuditEvent]]:
    """Every concrete event class (for the documentation test and the auditor's filter)."""
    out: list[type[AuditEvent]] = []
    pending = list(AuditEvent.__subclasses__())
    while pending:
        cls = pending.pop(0)
        out.append(cls)
        pending.extend(cls.__subclasses__())
    return out


def field_names(cls: type[AuditEvent]) -> list[str]:
    return [f.name for f in fields(cls)]


# -- the scoring service (issue 13) -------------------------------------------------------------


@dataclass(frozen=True)
class IntakeSetAside(AuditEvent):
    """Lines of the scoring service's intake log that could not be absorbed into the store, moved to
    ``<store>.intake/unreadable/`` (``lines`` empty: the whole file could not be read)."""

    action = "intake_set_aside"
    target_field = "segment"
    segment: str
    moved_to: str
    lines: tuple[int, ...]
    kept: int
    reason: str
