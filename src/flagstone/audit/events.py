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
class AlertJoinedCase(AuditEvent):
    """A new alert of the same scheme as an open case's alerts was added to that case (schemes.py)."""

    action = "alert_joined_case"
    target_field = "case_id"
    case_id: int
    alert_id: str
    rule_id: str


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
    """A version of a case's proposal: its number, its identity (SHA-256) and how many events it covers."""

    action = "report_proposed"
    target_field = "case_id"
    case_id: int
    version: int = 0
    sha256: str = ""
    evidence: int = 0


@dataclass(frozen=True)
class ReportRejected(AuditEvent):
    """A version ended without approval: withdrawn by its proposer, or sent back by another
    supervisor; ``held_by`` names the supervisors who had opened the case while it was current."""

    action = "report_rejected"
    target_field = "case_id"
    case_id: int
    reason: str
    version: int = 0
    outcome: str = ""
    held_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportApproved(AuditEvent):
    """The version approved (number and identity) and the SHA-256 of the goAML report built from it."""

    action = "report_approved"
    target_field = "case_id"
    case_id: int
    proposer: str
    version: int = 0
    sha256: str = ""
    report_sha256: str = ""


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


# -- quarantine (issue 13, privacy at rest) --------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRevealed(AuditEvent):
    """A supervisor read the decrypted raw text of a quarantined record (batch/record), for a reason."""

    action = "quarantine_revealed"
    target_field = "record"
    record: str
    source: str
    reason: str


# -- approvals bound to what was read, and role grants (issue 13) --------------------------------


@dataclass(frozen=True)
class ApprovalRefusedStale(AuditEvent):
    """An approval (or send-back) naming a proposal the case no longer holds: the approver read
    another version, or none. Nothing changed; they must reload."""

    action = "approval_stale"
    target_field = "case_id"
    case_id: int
    seen: str
    current_version: int | None


@dataclass(frozen=True)
class RoleGrantRequested(AuditEvent):
    """Someone asked that ``username`` get a role that needs a second admin (supervisor, admin)."""

    action = "role_grant_requested"
    target_field = "username"
    username: str
    grant_id: int
    role: str
    team: str
    change: str  # "new user" or "role change from <old role>"


@dataclass(frozen=True)
class RoleGranted(AuditEvent):
    """``username`` got ``role``: the entry's actor granted it; ``requested_by`` asked for it;
    ``mode`` says how (a second admin, the bootstrap of the first admin, or single-admin mode)."""

    action = "role_granted"
    target_field = "username"
    username: str
    grant_id: int
    role: str
    team: str
    requested_by: str
    mode: str


@dataclass(frozen=True)
class RoleGrantRefused(AuditEvent):
    """A pending grant refused by an admin, or withdrawn by whoever asked for it."""

    action = "role_grant_refused"
    target_field = "username"
    username: str
    grant_id: int
    role: str
    requested_by: str


@dataclass(frozen=True)
class SingleAdminMode(AuditEvent):
    """The case review started with ``security.single_admin`` on: grants need no second admin."""

    action = "single_admin_mode"
    target_field = "config"
    config: str


# -- hardening (issue 13): case database upgrades, log-in limits, failed requests -----------------


@dataclass(frozen=True)
class CaseDatabaseUpgraded(AuditEvent):
    """A case database made by an older Flagstone brought up to this one's tables when it opened."""

    action = "case_database_upgraded"
    target_field = "database"
    database: str
    changes: tuple[str, ...]


@dataclass(frozen=True)
class LoginRateLimited(AuditEvent):
    """A client address reached its limit of failed log-ins: written once per lock, at its first
    refused attempt; the attempts refused after it are counted, not written one by one."""

    action = "login_rate_limited"
    target_field = "client"
    client: str
    failures: int
    minutes: int
    until: str


@dataclass(frozen=True)
class RequestFailed(AuditEvent):
    """A request the web UI could not answer because of an error of its own (answered 500)."""

    action = "request_failed"
    target_field = "resource"
    resource: str
    method: str
    error: str


# -- issue 13: the audit key ----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKeyCreated(AuditEvent):
    """A new audit signing key, made for a new log (the first entry that key signs)."""

    action = "audit_key_created"
    target_field = "key_id"
    key_id: str
    public_key: str


# -- the scoring service (issue 13) -------------------------------------------------------------


# -- triage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriageModelTrained(AuditEvent):
    """A triage model trained and stored (inactive) with its card: from ``label_source`` (a labels
    file, or the case database's decisions), on ``alerts`` alerts of which ``positives`` true."""

    action = "triage_model_trained"
    target_field = "model_id"
    model_id: str
    label_source: str
    alerts: int
    positives: int


@dataclass(frozen=True)
class TriageModelActivated(AuditEvent):
    """A supervisor made a model the one whose scores order the queue (the previous one, if any,
    stops)."""

    action = "triage_model_activated"
    target_field = "model_id"
    model_id: str
    supervisor: str
    previous: str


@dataclass(frozen=True)
class AlertsScored(AuditEvent):
    """Alerts given a priority and an explanation by a model. A score orders the queue; it changes
    no case."""

    action = "alerts_scored"
    target_field = "model_id"
    model_id: str
    alerts: int


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
