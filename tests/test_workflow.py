"""Four eyes, as a property: over random sequences of actions by random people, no case reaches
``approved`` or ``filed`` unless a supervisor other than the proposer approved it; refused actions
change nothing; only the allowed roles ever change a case; and an approval approves the very
proposal version its approver read, however often it was withdrawn and proposed again meanwhile."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagstone.oversight.roles import allowed
from flagstone.oversight.workflow import (
    ACTIONS,
    APPROVED,
    FILED,
    CaseState,
    NotPermitted,
    Person,
    StaleProposal,
    WorkflowError,
    apply,
)

PEOPLE = [
    Person("ana", "analyst"),
    Person("abe", "analyst"),
    Person("sam", "supervisor"),
    Person("sue", "supervisor"),
    Person("aud", "auditor"),
    Person("adm", "admin"),
]
# "view" opens the case page: the approve form then names the proposal it showed.
steps = st.lists(
    st.tuples(st.sampled_from(PEOPLE), st.sampled_from([*ACTIONS, "view", "view"]), st.sampled_from(["", "a reason"])),
    max_size=40,
)


def four_eyes_hold(case: CaseState) -> None:
    if case.state in (APPROVED, FILED):
        assert case.proposer is not None and case.approver is not None
        assert case.proposer != case.approver
        approver = next(p for p in PEOPLE if p.username == case.approver)
        assert approver.role == "supervisor"


@settings(max_examples=2000)
@given(steps)
def test_no_sequence_files_a_report_without_two_people(seq: list[tuple[Person, str, str]]) -> None:
    case = CaseState()
    pages: dict[str, str | None] = {}  # the proposal each person's open page shows
    for n, (person, action, text) in enumerate(seq):
        if action == "view":
            pages[person.username] = case.proposal
            continue
        seen = pages.get(person.username)
        try:
            after = apply(case, action, person, text, assignee="ana", proposal=f"v{n}", seen=seen)
        except WorkflowError:
            continue  # refused: the case is unchanged (it is immutable)
        assert allowed(person.role, action)
        if action == "approve":
            assert seen is not None and after.proposal == seen == case.proposal  # what they read
        if after.state == FILED and case.state != FILED:
            assert case.state == APPROVED and after.filer == person.username
        case = after
        four_eyes_hold(case)


def test_the_happy_path_and_its_refusals() -> None:
    sam, sue, ana = PEOPLE[2], PEOPLE[3], PEOPLE[0]
    case = apply(CaseState(), "propose", ana, "structuring over three days", proposal="v1")
    with pytest.raises(NotPermitted):
        apply(case, "approve", ana, seen="v1")  # an analyst may not approve
    case = apply(CaseState(), "propose", sam, "structuring", proposal="v1")
    with pytest.raises(NotPermitted, match="other than the person who proposed"):
        apply(case, "approve", sam, seen="v1")
    with pytest.raises(WorkflowError, match="cannot file a case that is proposed"):
        apply(case, "file", sue)
    with pytest.raises(StaleProposal, match="does not name the proposal"):
        apply(case, "approve", sue)
    case = apply(case, "approve", sue, seen="v1")
    case = apply(case, "file", sam)
    assert (case.state, case.proposer, case.approver, case.filer) == (FILED, "sam", "sue", "sam")
    with pytest.raises(WorkflowError, match="needs a written reason"):
        apply(CaseState(), "dismiss", ana, "  ")
    with pytest.raises(WorkflowError, match="cannot escalate a case that is filed"):
        apply(case, "escalate", ana)


def test_an_approval_of_a_withdrawn_version_is_stale() -> None:
    """sue opens v1; sam withdraws it and proposes v2; sue's open form still names v1: refused."""
    sam, sue = PEOPLE[2], PEOPLE[3]
    v1 = apply(CaseState(), "propose", sam, "structuring", proposal="v1")
    seen_by_sue = v1.proposal
    v2 = apply(apply(v1, "reject", sam, "withdrawn"), "propose", sam, "something else", proposal="v2")
    with pytest.raises(StaleProposal, match="the proposal changed since you opened it: reload and read again"):
        apply(v2, "approve", sue, seen=seen_by_sue)
    with pytest.raises(StaleProposal):
        apply(v2, "reject", sue, "send back", seen=seen_by_sue)  # a send-back that names a version too
    assert apply(v2, "approve", sue, seen="v2").state == APPROVED
