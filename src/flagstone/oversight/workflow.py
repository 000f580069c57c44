"""The case workflow as a pure state machine: the only code that changes a case's state.

    open ──escalate──▶ escalated
    open / escalated ──dismiss (reason)──▶ dismissed
    open / escalated ──propose──▶ proposed ──reject (reason)──▶ escalated
    proposed ──approve (a supervisor who is not the proposer)──▶ approved ──file──▶ filed

Four eyes: ``approve`` checks that the approver is a supervisor and a different person from the
proposer, and ``file`` checks the case is approved; so no sequence of actions reaches ``filed``
without two distinct people. ``comment``, ``assign`` and ``reveal`` leave the state as it is.

An approval names what it approves: every proposal is a version with an identity (the digest of
its text, evidence and parties, made by :mod:`flagstone.oversight.proposals`), and ``approve``
carries the identity the approver read (``seen``). If the case holds another proposal by then
(withdrawn and proposed again), the approval is refused with :class:`StaleProposal`.
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


class StaleProposal(WorkflowError):
    """The approver read a proposal that the case no longer holds; they must read the new one."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "the proposal changed since you opened it: reload and read again" + (f" ({detail})" if detail else "")
        )


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
    proposal: str | None = None  # the identity of the proposal the case holds while proposed


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


def apply(
    case: CaseState,
    action: str,
    by: Person,
    text: str = "",
    assignee: str | None = None,
    *,
    proposal: str | None = None,
    seen: str | None = None,
) -> CaseState:
    """The case after ``by`` takes ``action``; raises :class:`WorkflowError` if it may not.

    ``proposal`` is the identity of the proposal a ``propose`` makes; ``seen`` the identity of the
    proposal an ``approve`` approves (what the approver read; required), or a ``reject`` sends back
    (optional)."""
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
        if not proposal:
            raise WorkflowError("a proposal needs its identity (version and digest)")
        return replace(case, state=PROPOSED, proposer=by.username, approver=None, proposal=proposal)
    if action == "reject":
        if seen is not None and seen != case.proposal:
            raise StaleProposal()
        return replace(case, state=ESCALATED, proposer=None, proposal=None)
    if action == "approve":
        if case.proposer is None or case.proposer == by.username:
            raise NotPermitted("a report must be approved by a supervisor other than the person who proposed it")
        if not seen or seen != case.proposal:
            raise StaleProposal("" if seen else "the approval does not name the proposal it approves")
        return replace(case, state=APPROVED, approver=by.username)
    if action == "file":
        if case.approver is None or case.proposer is None or case.approver == case.proposer:
            raise WorkflowError("only a report approved by a second person can be filed")
        return replace(case, state=FILED, filer=by.username)
    return case  # comment, reveal
