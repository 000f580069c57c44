"""Reading and acting on cases, with every right checked and every action audited.

Each function takes the acting :class:`User`. A case is fetched only through :func:`_load`, which
checks the role and the team (an analyst asking for another team's case by its id gets "not
found", and the attempt is audited). State changes go through :func:`flagstone.oversight.workflow.apply`
and are written with their audit entry in one transaction.
"""

from __future__ import annotations

import hashlib
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
from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.roles import REVIEWERS, allowed
from flagstone.oversight.schema import audit_entries, case_events, cases, comments, reveals, users, vault
from flagstone.oversight.users import User
from flagstone.oversight.workflow import APPROVED, CLOSED, FILED, CaseState, NotPermitted, Person, WorkflowError, apply


class Refusal(Exception):
    """A request refused for want of rights; audited as an authorisation failure."""

    def __init__(self, message: str, resource: str, method: str, reason: str) -> None:
        super().__init__(message)
        self.event = AuthorisationFailed(resource, method, reason)


class NotFound(Refusal):
    """No such case for this user (it may exist in another team; we do not say)."""


class Forbidden(Refusal):
    """The user may not do this: their role, or four eyes."""


@contextmanager
def _transaction(ov: Oversight, user: User) -> Iterator[Connection]:
    """One transaction for a request. A refusal rolls it back and is then audited on its own, so
    the record of the attempt survives the attempt."""
    try:
        with ov.engine.begin() as con:
            yield con
    except Refusal as exc:
        ov.audit.record(user.username, exc.event)
        raise


SORTS: dict[str, tuple[Any, ...]] = {
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


@dataclass
class CaseView:
    case: dict[str, Any]
    values: dict[str, Any]
    evidence: list[dict[str, Any]]
    comments: list[dict[str, Any]]
    history: list[dict[str, Any]]
    revealed: dict[str, str] = field(default_factory=dict)
    reveal_reasons: dict[str, str] = field(default_factory=dict)
    parties: list[str] = field(default_factory=list)
    people: dict[int, str] = field(default_factory=dict)


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
        )
        for r in rows
    ]


def _queue_filter(user: User, state: str, rule: str | None, severity: str | None) -> list[ColumnElement[bool]]:
    conds = [_visible(user)]
    if state == ACTIVE:
        conds.append(cases.c.state.not_in(CLOSED))
    elif state:
        conds.append(cases.c.state == state)
    if rule:
        conds.append(cases.c.rule_id.startswith(rule, autoescape=True))
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
        evidence = [
            dict(r._mapping)
            for r in con.execute(select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.ts))
        ]
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
                select(audit_entries.c.seq, audit_entries.c.ts, audit_entries.c.actor, audit_entries.c.action)
                .where(audit_entries.c.target == str(case_id), audit_entries.c.action.startswith("case_")
                       | audit_entries.c.action.in_(_CASE_ACTIONS))
                .order_by(audit_entries.c.seq)
            )
        ]  # fmt: skip
        revealed, reasons = _revealed(ov, con, user, case_id)
        people = _people(con)
    parties = sorted({p for e in evidence for p in (e["actor"], e["counterparty"]) if p})
    return CaseView(
        case=dict(row._mapping),
        values=json.loads(row.values_json),
        evidence=evidence,
        comments=notes,
        history=history,
        revealed=revealed,
        reveal_reasons=reasons,
        parties=parties,
        people=people,
    )


_CASE_ACTIONS = ("alert_viewed", "identity_revealed", "report_proposed", "report_rejected", "report_approved",
                 "report_filed")  # fmt: skip


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


def _state(row: Any, people: dict[int, str]) -> CaseState:
    name = people.get
    return CaseState(
        row.state,
        name(row.proposer_id) if row.proposer_id else None,
        name(row.approver_id) if row.approver_id else None,
        name(row.filer_id) if row.filer_id else None,
        name(row.assignee_id) if row.assignee_id else None,
    )


def act(ov: Oversight, user: User, case_id: int, action: str, text: str = "", assignee: str | None = None) -> CaseState:
    """Take ``action`` on a case: comment, assign, escalate, dismiss, propose, reject, approve or file."""
    if action == "reveal":
        raise WorkflowError("use reveal() to reveal an identity")
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, action, lock=True)
        people = _people(con)
        ids = {v: k for k, v in people.items()}
        if action == "assign" and assignee is not None:
            _check_assignee(con, assignee, row.team)
        after = _apply(user, row, people, action, text, assignee)
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
        elif action == "propose":
            changes["proposal"] = text.strip()
            changes["report_xml"] = None
            event = ReportProposed(case_id)
        elif action == "reject":
            event = ReportRejected(case_id, text.strip())
        elif action == "approve":
            from flagstone.oversight.reporting import case_report_xml  # the goAML builder, only when needed

            changes["report_xml"] = case_report_xml(ov, con, row, approver=user, proposer=after.proposer or "")
            event = ReportApproved(case_id, after.proposer or "")
        else:  # file
            digest = hashlib.sha256((row.report_xml or "").encode("utf-8")).hexdigest()
            changes["closing_reason"] = "report filed"
            changes["filed_at"] = utcnow()
            event = ReportFiled(case_id, digest)
            ov.audit.record(user.username, CaseClosed(case_id, "reported", "report filed with the FIU"), con)
        con.execute(update(cases).where(cases.c.id == case_id).values(**changes))
        ov.audit.record(user.username, event, con)
        return after


def _apply(
    user: User, row: Any, people: dict[int, str], action: str, text: str, assignee: str | None = None
) -> CaseState:
    try:
        return apply(_state(row, people), action, Person(user.username, user.role), text, assignee)
    except NotPermitted as exc:  # e.g. approving one's own proposal
        raise Forbidden(str(exc), f"/cases/{row.id}", action, str(exc)) from exc


def _check_assignee(con: Connection, username: str, team: str) -> None:
    row = con.execute(select(users).where(users.c.username == username)).first()
    if row is None or not row.active or row.team != team or row.role not in REVIEWERS:
        raise WorkflowError(f"'{username}' is not an active analyst or supervisor of team {team}")


def reveal(ov: Oversight, user: User, case_id: int, pseudonym: str, reason: str) -> str:
    """A supervisor reveals the real identifier behind a pseudonym of this case, for ``reason``."""
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, "reveal", lock=True)
        people = _people(con)
        _apply(user, row, people, "reveal", reason)
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
    """The approved (or filed) goAML report of a case, for download; the export is audited."""
    with _transaction(ov, user) as con:
        row = _load(con, user, case_id, "download_report")
        if row.state not in (APPROVED, FILED) or not row.report_xml:
            raise WorkflowError(f"case {case_id} has no approved report (it is {row.state})")
        data = str(row.report_xml).encode("utf-8")
        ov.audit.record(user.username, Exported(f"goaml report of case {case_id}", "download", 1), con)
    return data
