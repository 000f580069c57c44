"""Reading and acting on cases, with every right checked and every action audited.

Each function takes the acting :class:`User`. A case is fetched only through :func:`_load`, which
checks the role and the team (an analyst asking for another team's case by its id gets "not
found", and the attempt is audited). State changes go through :func:`flagstone.oversight.workflow.apply`
and are written with their audit entry in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, asc, desc, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from flagstone.audit.events import (
    AlertViewed,
    ApprovalRefusedStale,
    AuditEvent,
    AuthorisationFailed,
    CaseAssigned,
    CaseClosed,
    CaseCommented,
    CaseEscalated,
    Exported,
    IdentityRevealed,
    ReportApproved,
    ReportFiled,
    ReportProposed,
    ReportRejected,
)
from flagstone.oversight import proposals
from flagstone.oversight.context import Oversight
from flagstone.oversight.roles import REVIEWERS, allowed
from flagstone.oversight.schema import (
    audit_entries,
    case_alerts,
    case_events,
    cases,
    comments,
    reveals,
    users,
    utcnow,
    vault,
)
from flagstone.oversight.schema import proposals as proposal_table
from flagstone.oversight.users import User
from flagstone.oversight.workflow import (
    APPROVED,
    CLOSED,
    FILED,
    CaseState,
    NotPermitted,
    Person,
    StaleProposal,
    WorkflowError,
    apply,
)


class Refusal(Exception):
    """A request refused for want of rights; audited as an authorisation failure."""

    def __init__(self, message: str, resource: str, method: str, reason: str) -> None:
        super().__init__(message)
        self.event = AuthorisationFailed(resource, method, reason)


class NotFound(Refusal):
    """No such case for this user (it may exist in another team; we do not say)."""


class Forbidden(Refusal):
    """The user may not do this: their role, or four eyes."""


class Stale(StaleProposal):
    """An approval of a proposal the case no longer holds; audited like a refusal."""

    def __init__(self, detail: str, event: AuditEvent) -> None:
        super().__init__(detail)
        self.event = event


@contextmanager
def _transaction(ov: Oversight, user: User) -> Iterator[Connection]:
    """One transaction for a request. A refusal rolls it back and is then audited on its own, so
    the record of the attempt survives the attempt."""
    try:
        with ov.engine.begin() as con:
            yield con
    except (Refusal, Stale) as exc:
        ov.audit.record(user.username, exc.event)
        raise


SORTS: dict[str, tuple[Any, ...]] = {
    # The active triage model's review sample first (read whatever the priority, so that reviewers'
    # decisions are not all about what the model already ranks high), then its priority; unscored
    # cases after the scored ones, most severe first.
    "priority": (
        cases.c.review_sample.desc().nulls_last(),
        cases.c.priority.desc().nulls_last(),
        desc(cases.c.severity_rank),
        asc(cases.c.detected_at),
    ),
    "severity": (desc(cases.c.severity_rank), asc(cases.c.detected_at)),
    "age": (asc(cases.c.detected_at), desc(cases.c.severity_rank)),
    "deadline": (asc(cases.c.deadline), desc(cases.c.severity_rank)),
}
ACTIVE = "active"


@dataclass(frozen=True)
class CaseSummary:
    id: int
    rule_id: str
    severity: str
    state: str
    team: str
    group_key: str
    detected_at: datetime
    deadline: datetime
    assignee: str | None
    evidence: int
    priority: float | None = None  # the active triage model's, 0-1; it orders, it decides nothing
    explanation: str | None = None
    review_sample: bool = False  # drawn at random for review, whatever the priority
    rules: tuple[str, ...] = ()  # of its alerts: a case holds one scheme's alerts (schemes.py)
    alerts: int = 1


@dataclass
class CaseView:
    case: dict[str, Any]
    values: dict[str, Any]
    evidence: list[dict[str, Any]]  # what the current (or approved) proposal covers; all while none
    later: list[dict[str, Any]]  # evidence that arrived after that proposal: not in its report
    proposal: dict[str, Any] | None  # the current or approved version (its sha256 goes in the approve form)
    proposals: list[dict[str, Any]]  # every version, oldest first
    comments: list[dict[str, Any]]
    history: list[dict[str, Any]]
    revealed: dict[str, str] = field(default_factory=dict)
    reveal_reasons: dict[str, str] = field(default_factory=dict)
    parties: list[str] = field(default_factory=list)
    people: dict[int, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every alert of the case's scheme, in order


def _visible(user: User) -> ColumnElement[bool]:
    if user.role == "auditor":
        return cases.c.id.is_not(None)
    return cases.c.team == user.team


def queue(
    ov: Oversight,
    user: User,
    *,
    state: str = ACTIVE,
    rule: str | None = None,
    severity: str | None = None,
    sort: str = "severity",
    limit: int = 200,
    offset: int = 0,
) -> list[CaseSummary]:
    """The cases this user may see, filtered and sorted (most severe or oldest first); one page of
    ``limit`` from ``offset`` (:func:`queue_size` counts them all)."""
    if not allowed(user.role, "view_cases"):
        exc = Forbidden(f"a user with the role {user.role} may not view cases", "/queue", "view", f"role {user.role}")
        ov.audit.record(user.username, exc.event)
        raise exc
    conds = _queue_filter(user, state, rule, severity)
    n_evidence = (
        select(func.count()).select_from(case_events).where(case_events.c.case_id == cases.c.id).scalar_subquery()
    )
    query = (
        select(cases, users.c.username.label("assignee_name"), n_evidence.label("n_evidence"))
        .outerjoin(users, users.c.id == cases.c.assignee_id)
        .where(and_(*conds))
        .order_by(*SORTS.get(sort, SORTS["severity"]), cases.c.id)
        .limit(limit)
        .offset(max(offset, 0))
    )
    with ov.engine.connect() as con:
        rows = con.execute(query).all()
        schemes = _alerts_of(con, [r.id for r in rows])
    return [
        CaseSummary(
            r.id,
            r.rule_id,
            r.severity,
            r.state,
            r.team,
            r.group_key,
            r.detected_at,
            r.deadline,
            r.assignee_name,
            r.n_evidence,
            r.priority,
            r.explanation,
            bool(r.review_sample),
            *schemes.get(r.id, ((r.rule_id,), 1)),
        )
        for r in rows
    ]


def _alerts_of(con: Connection, case_ids: list[int]) -> dict[int, tuple[tuple[str, ...], int]]:
    """Per case: the rules of its alerts (first seen first) and how many alerts it holds."""
    found: dict[int, list[str]] = {}
    query = (
        select(case_alerts.c.case_id, case_alerts.c.rule_id)
        .where(case_alerts.c.case_id.in_(case_ids))
        .order_by(case_alerts.c.case_id, case_alerts.c.first_ts, case_alerts.c.alert_id)
    )
    for case_id, rule_id in con.execute(query):
        found.setdefault(case_id, []).append(rule_id)
    return {case_id: (tuple(dict.fromkeys(rules)), len(rules)) for case_id, rules in found.items()}


def default_sort(ov: Oversight) -> str:
    """``priority`` once a triage model has scored cases, else ``severity``."""
    with ov.engine.connect() as con:
        scored = con.execute(select(cases.c.id).where(cases.c.priority.is_not(None)).limit(1)).first()
    return "priority" if scored else "severity"


def _queue_filter(user: User, state: str, rule: str | None, severity: str | None) -> list[ColumnElement[bool]]:
    conds = [_visible(user)]
    if state == ACTIVE:
        conds.append(cases.c.state.not_in(CLOSED))
    elif state:
        conds.append(cases.c.state == state)
    if rule:  # any alert of the case's scheme
        conds.append(
            cases.c.id.in_(select(case_alerts.c.case_id).where(case_alerts.c.rule_id.startswith(rule, autoescape=True)))
        )
    if severity:
        conds.append(cases.c.severity == severity)
    return conds


def queue_size(
    ov: Oversight, user: User, *, state: str = ACTIVE, rule: str | None = None, severity: str | None = None
) -> int:
    """How many cases :func:`queue` has for these filters, over all pages."""
    if not allowed(user.role, "view_cases"):
        return 0
    query = select(func.count()).select_from(cases).where(and_(*_queue_filter(user, state, rule, severity)))
    with ov.engine.connect() as con:
        return int(con.execute(query).scalar_one())


def _load(con: Connection, user: User, case_id: int, action: str, *, lock: bool = False) -> Any:
    where = f"/cases/{case_id}"
    if not allowed(user.role, "view_cases") or (action != "view" and not allowed(user.role, action)):
        message = f"a user with the role {user.role} may not {action.replace('_', ' ')}"
        raise Forbidden(message, where, action, f"role {user.role}")
    query = select(cases).where(cases.c.id == case_id)
    row = con.execute(query.with_for_update() if lock else query).first()
    if row is None or (user.role != "auditor" and row.team != user.team):
        reason = "no such case" if row is None else f"case belongs to team {row.team}"
        raise NotFound(f"no case {case_id}", where, action, reason)
    return row


def view_case(ov: Oversight, user: User, case_id: int) -> CaseView:
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, "view")
        ov.audit.record(user.username, AlertViewed(case_id, row.alert_id), con)
        evidence = proposals.evidence(con, case_id)
        versions = proposals.versions(con, case_id)
        notes = [
            dict(r._mapping)
            for r in con.execute(
                select(comments, users.c.username)
                .join(users, users.c.id == comments.c.user_id)
                .where(comments.c.case_id == case_id)
                .order_by(comments.c.created_at, comments.c.id)
            )
        ]
        history = [
            dict(r._mapping)
            for r in con.execute(
                select(audit_entries.c.seq, audit_entries.c.ts, audit_entries.c.actor, audit_entries.c.action,
                       audit_entries.c.details)
                .where(audit_entries.c.target == str(case_id), audit_entries.c.action.startswith("case_")
                       | audit_entries.c.action.in_(_CASE_ACTIONS))
                .order_by(audit_entries.c.seq)
            )
        ]  # fmt: skip
        revealed, reasons = _revealed(ov, con, user, case_id)
        people = _people(con)
        alerts = [
            {**r._mapping, "values": json.loads(r.values_json)}
            for r in con.execute(
                select(case_alerts)
                .where(case_alerts.c.case_id == case_id)
                .order_by(case_alerts.c.first_ts, case_alerts.c.alert_id)
            )
        ]
    for h in history:
        h["details"] = json.loads(h["details"])
    parties = sorted({p for e in evidence for p in (e["actor"], e["counterparty"]) if p})
    # While a version is current or approved, the page shows the evidence it covers, and apart
    # from it what arrived since (not in the report).
    shown = versions[-1] if versions and versions[-1]["outcome"] in (None, proposals.APPROVED) else None
    covered = {tuple(k) for k in shown["evidence_keys"]} if shown else None
    later = [e for e in evidence if covered is not None and (e["source"], e["event_id"]) not in covered]
    return CaseView(
        case=dict(row._mapping),
        values=json.loads(row.values_json),
        evidence=[e for e in evidence if covered is None or (e["source"], e["event_id"]) in covered],
        later=later,
        proposal=shown,
        proposals=versions,
        comments=notes,
        history=history,
        revealed=revealed,
        reveal_reasons=reasons,
        parties=parties,
        people=people,
        alerts=alerts,
    )


_CASE_ACTIONS = ("alert_viewed", "identity_revealed", "report_proposed", "report_rejected", "report_approved",
                 "report_filed", "approval_stale")  # fmt: skip


def _revealed(ov: Oversight, con: Connection, user: User, case_id: int) -> tuple[dict[str, str], dict[str, str]]:
    """Identities revealed in this case, decrypted for a supervisor of its team only."""
    rows = con.execute(
        select(reveals.c.pseudonym, reveals.c.reason, vault.c.nonce, vault.c.ciphertext)
        .join(vault, vault.c.pseudonym == reveals.c.pseudonym)
        .where(reveals.c.case_id == case_id)
    ).all()
    reasons = {r.pseudonym: r.reason for r in rows}
    if not rows or not allowed(user.role, "reveal"):
        return {}, reasons
    try:
        return ov.decrypt(rows), reasons
    except WorkflowError as exc:  # show the case all the same, and say why the identities are missing
        return {r.pseudonym: f"(not shown: {exc})" for r in rows}, reasons


def _people(con: Connection) -> dict[int, str]:
    """User names by id: the workflow speaks of people, the tables of ids."""
    return {r.id: r.username for r in con.execute(select(users.c.id, users.c.username))}


def _state(row: Any, people: dict[int, str], proposal: Any = None) -> CaseState:
    name = people.get
    return CaseState(
        row.state,
        name(row.proposer_id) if row.proposer_id else None,
        name(row.approver_id) if row.approver_id else None,
        name(row.filer_id) if row.filer_id else None,
        name(row.assignee_id) if row.assignee_id else None,
        proposals.identity(proposal),
    )


def act(
    ov: Oversight,
    user: User,
    case_id: int,
    action: str,
    text: str = "",
    assignee: str | None = None,
    *,
    seen: str | None = None,
) -> CaseState:
    """Take ``action`` on a case: comment, assign, escalate, dismiss, propose, reject, approve or file.

    ``seen`` is the identity (SHA-256) of the proposal an ``approve`` approves, as the case page
    showed it; an approval without it, or naming a version the case no longer holds, is refused
    with :class:`StaleProposal` (a 409 on the web), audited, and changes nothing. A ``reject``
    that names one is held to it as well."""
    if action == "reveal":
        raise WorkflowError("use reveal() to reveal an identity")
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, action, lock=True)
        people = _people(con)
        ids = {v: k for k, v in people.items()}
        if action == "assign" and assignee is not None:
            _check_assignee(con, assignee, row.team)
        current = proposals.latest(con, case_id)
        draft = proposals.draft(con, row, user.username, text.strip()) if action == "propose" else None
        after = _apply(con, user, row, _state(row, people, current), action, text, assignee,
                       proposal=draft.sha256 if draft else None, seen=seen)  # fmt: skip
        changes: dict[str, Any] = {
            "state": after.state,
            "proposer_id": ids.get(after.proposer) if after.proposer else None,
            "approver_id": ids.get(after.approver) if after.approver else None,
            "filer_id": ids.get(after.filer) if after.filer else None,
            "assignee_id": ids.get(after.assignee) if after.assignee else None,
            "updated_at": utcnow(),
        }
        event: AuditEvent
        if action == "comment":
            comment_id = con.execute(
                insert(comments).values(case_id=case_id, user_id=user.id, body=text.strip(), created_at=utcnow())
            ).inserted_primary_key[0]  # type: ignore[index]
            event = CaseCommented(case_id, int(comment_id))
        elif action == "assign":
            event = CaseAssigned(case_id, str(assignee))
        elif action == "escalate":
            event = CaseEscalated(case_id, text.strip())
        elif action == "dismiss":
            changes["closing_reason"] = text.strip()
            event = CaseClosed(case_id, "dismissed", text.strip())
        elif action == "propose" and draft is not None:
            changes["proposal"] = text.strip()
            event = ReportProposed(case_id, draft.version, draft.sha256, len(draft.evidence))
        elif action == "reject":
            outcome = proposals.WITHDRAWN if row.proposer_id == user.id else proposals.SENT_BACK
            held = proposals.end(con, current, outcome, user.id, text.strip()) if current is not None else []
            event = ReportRejected(case_id, text.strip(), current.version if current else 0, outcome, tuple(held))
        elif action == "approve":
            event = _approve(ov, con, user, row, current, after.proposer or "")
        else:  # file
            if current is None or current.outcome != proposals.APPROVED:
                raise WorkflowError(f"case {case_id} has no approved report to file; propose and approve it again")
            changes["closing_reason"] = "report filed"
            changes["filed_at"] = utcnow()
            event = ReportFiled(case_id, current.report_sha256)
            ov.audit.record(user.username, CaseClosed(case_id, "reported", "report filed with the FIU"), con)
        con.execute(update(cases).where(cases.c.id == case_id).values(**changes))
        seq = ov.audit.record(user.username, event, con)
        if draft is not None:
            proposals.add(con, case_id, draft, text.strip(), user.id, seq)
        return after


def _approve(ov: Oversight, con: Connection, user: User, case: Any, current: Any, proposer: str) -> AuditEvent:
    """Build the report of the version being approved from its frozen evidence, and keep it sealed."""
    from flagstone.oversight.reporting import seal_report  # the goAML builder, only when needed

    keys = proposals.frozen(current)
    evidence = proposals.evidence(con, case.id, keys)
    if len(evidence) != len(keys) or proposals.digest(case, current.version, proposer, current.text, evidence) != (
        current.sha256
    ):
        raise WorkflowError(
            f"the evidence of proposal v{current.version} changed since it was proposed; send it back and propose again"
        )
    sealed = seal_report(ov, con, case, version=current.version, text=current.text, evidence=evidence,
                         approver=user, proposer=proposer)  # fmt: skip
    proposals.end(con, current, proposals.APPROVED, user.id, report_sha256=sealed.sha256,
                  report_nonce=sealed.nonce, report_ciphertext=sealed.ciphertext)  # fmt: skip
    return ReportApproved(case.id, proposer, current.version, current.sha256, sealed.sha256)


def _apply(
    con: Connection,
    user: User,
    row: Any,
    state: CaseState,
    action: str,
    text: str,
    assignee: str | None = None,
    **identities: str | None,
) -> CaseState:
    try:
        return apply(state, action, Person(user.username, user.role), text, assignee, **identities)
    except NotPermitted as exc:  # e.g. approving one's own proposal
        raise Forbidden(str(exc), f"/cases/{row.id}", action, str(exc)) from exc
    except StaleProposal as exc:
        seen = identities.get("seen") or ""
        current = proposals.latest(con, row.id)
        detail = proposals.stale_detail(con, row.id, seen, current)
        live = current.version if current is not None and current.outcome is None else None
        raise Stale(detail, ApprovalRefusedStale(row.id, seen[:64], live)) from exc


def _check_assignee(con: Connection, username: str, team: str) -> None:
    row = con.execute(select(users).where(users.c.username == username)).first()
    if row is None or not row.active or row.team != team or row.role not in REVIEWERS:
        raise WorkflowError(f"'{username}' is not an active analyst or supervisor of team {team}")


def reveal(ov: Oversight, user: User, case_id: int, pseudonym: str, reason: str) -> str:
    """A supervisor reveals the real identifier behind a pseudonym of this case, for ``reason``."""
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, "reveal", lock=True)
        people = _people(con)
        _apply(con, user, row, _state(row, people), "reveal", reason)
        in_case = con.execute(
            select(func.count())
            .select_from(case_events)
            .where(case_events.c.case_id == case_id)
            .where((case_events.c.actor == pseudonym) | (case_events.c.counterparty == pseudonym))
        ).scalar_one()
        if not in_case and pseudonym != row.group_key:
            raise WorkflowError(f"{pseudonym} is not a party of case {case_id}")
        secret = con.execute(select(vault).where(vault.c.pseudonym == pseudonym)).first()
        if secret is None:
            raise WorkflowError(f"no identity is held for {pseudonym} (it may have been purged)")
        value = ov.decrypt([secret])[pseudonym]
        already = con.execute(
            select(reveals.c.id).where(reveals.c.case_id == case_id, reveals.c.pseudonym == pseudonym)
        ).first()
        if already is None:
            con.execute(
                insert(reveals).values(
                    case_id=case_id, pseudonym=pseudonym, user_id=user.id, reason=reason.strip(), revealed_at=utcnow()
                )
            )
        ov.audit.record(user.username, IdentityRevealed(case_id, pseudonym, reason.strip()), con)
    return value


def report_xml(ov: Oversight, user: User, case_id: int) -> bytes:
    """The approved (or filed) goAML report of a case, for download; the export is audited.

    The report rests encrypted; it is opened here and checked against the SHA-256 recorded when it
    was approved, so every download gives the bytes that were approved and filed."""
    from flagstone.oversight.reporting import SealedReport, open_report

    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, "download_report")
        approved = con.execute(
            select(proposal_table).where(
                proposal_table.c.case_id == case_id, proposal_table.c.outcome == proposals.APPROVED
            )
        ).first()
        if row.state not in (APPROVED, FILED) or approved is None or approved.report_ciphertext is None:
            raise WorkflowError(f"case {case_id} has no approved report (it is {row.state})")
        sealed = SealedReport(approved.report_sha256, approved.report_nonce, approved.report_ciphertext)
        data = open_report(ov, case_id, approved.version, sealed)
        ov.audit.record(user.username, Exported(f"goaml report of case {case_id}", "download", 1), con)
    return data
