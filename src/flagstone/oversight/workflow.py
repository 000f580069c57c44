"""The case workflow as a pure state machine: the only code that changes a case's state.

    open ──escalate──▶ escalated
    open / escalated ──dismiss (reason)──▶ dismissed
    open / escalated ──propose──▶ proposed ──reject (reason)──▶ escalated
    proposed ──approve (a supervisor who is not the proposer)──▶ approved ──file──▶ filed

Four eyes: ``approve`` checks that the approver is a supervisor and a different person from the
proposer, and ``file`` checks the case is approved; so no sequence of actions reaches ``filed``
without two distinct people. ``comment``, ``assign`` and ``reveal`` leave the state as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flagstone.oversight.roles import allowed

OPEN, ESCALATED, PROPOSED, APPROVED, FILED, DISMISSED = (
    "open",
    "escalated",
    "proposed",
    "approved",
    "filed",
    "dismissed",
)
STATES = (OPEN, ESCALATED, PROPOSED, APPROVED, FILED, DISMISSED)
CLOSED = frozenset({FILED, DISMISSED})
ACTIONS = ("comment", "assign", "reveal", "escalate", "dismiss", "propose", "reject", "approve", "file")
# Actions that need a written reason or text.
NEEDS_TEXT = frozenset({"dismiss", "propose", "reject", "reveal"})


class WorkflowError(Exception):
    """The action is not possible for this user in this state; the message says why."""


class NotPermitted(WorkflowError):
    """This person may not take this step at all (their role, or four eyes)."""


@dataclass(frozen=True)
class Person:
    username: str
    role: str


@dataclass(frozen=True)
class CaseState:
    state: str = OPEN
    proposer: str | None = None
    approver: str | None = None
    filer: str | None = None
    assignee: str | None = None


_FROM: dict[str, frozenset[str]] = {
    "escalate": frozenset({OPEN}),
    "dismiss": frozenset({OPEN, ESCALATED}),
    "propose": frozenset({OPEN, ESCALATED}),
    "reject": frozenset({PROPOSED}),
    "approve": frozenset({PROPOSED}),
    "file": frozenset({APPROVED}),
    "comment": frozenset(STATES),
    "assign": frozenset(STATES) - CLOSED,
    "reveal": frozenset(STATES) - CLOSED,
}


def apply(case: CaseState, action: str, by: Person, text: str = "", assignee: str | None = None) -> CaseState:
    """The case after ``by`` takes ``action``; raises :class:`WorkflowError` if it may not."""
    if action not in _FROM:
        raise WorkflowError(f"unknown action '{action}'")
    if not allowed(by.role, action):
        raise NotPermitted(f"a user with the role {by.role} may not {action}")
    if case.state not in _FROM[action]:
        raise WorkflowError(f"cannot {action} a case that is {case.state}")
    if action in NEEDS_TEXT and not text.strip():
        raise WorkflowError(f"{action} needs a written reason")
    if action == "assign":
        if not assignee:
            raise WorkflowError("assign needs a user to assign to")
        return replace(case, assignee=assignee)
    if action == "escalate":
        return replace(case, state=ESCALATED)
    if action == "dismiss":
        return replace(case, state=DISMISSED)
    if action == "propose":
        return replace(case, state=PROPOSED, proposer=by.username, approver=None)
    if action == "reject":
        return replace(case, state=ESCALATED, proposer=None)
    if action == "approve":
        if case.proposer is None or case.proposer == by.username:
            raise NotPermitted("a report must be approved by a supervisor other than the person who proposed it")
        return replace(case, state=APPROVED, approver=by.username)
    if action == "file":
        if case.approver is None or case.proposer is None or case.approver == case.proposer:
            raise WorkflowError("only a report approved by a second person can be filed")
        return replace(case, state=FILED, filer=by.username)
    return case  # comment, reveal
