"""Four eyes, as a property: over random sequences of actions by random people, no case reaches
``approved`` or ``filed`` unless a supervisor other than the proposer approved it; refused actions
change nothing; and only the allowed roles ever change a case."""

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
steps = st.lists(
    st.tuples(st.sampled_from(PEOPLE), st.sampled_from(ACTIONS), st.sampled_from(["", "a reason"])),
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
    for person, action, text in seq:
        try:
            after = apply(case, action, person, text, assignee="ana")
        except WorkflowError:
            continue  # refused: the case is unchanged (it is immutable)
        assert allowed(person.role, action)
        if after.state == FILED and case.state != FILED:
            assert case.state == APPROVED and after.filer == person.username
        case = after
        four_eyes_hold(case)


def test_the_happy_path_and_its_refusals() -> None:
    sam, sue, ana = PEOPLE[2], PEOPLE[3], PEOPLE[0]
    case = apply(CaseState(), "propose", ana, "structuring over three days")
    with pytest.raises(NotPermitted):
        apply(case, "approve", ana)  # an analyst may not approve
    case = apply(CaseState(), "propose", sam, "structuring")
    with pytest.raises(NotPermitted, match="other than the person who proposed"):
        apply(case, "approve", sam)
    with pytest.raises(WorkflowError, match="cannot file a case that is proposed"):
        apply(case, "file", sue)
    case = apply(case, "approve", sue)
    case = apply(case, "file", sam)
    assert (case.state, case.proposer, case.approver, case.filer) == (FILED, "sam", "sue", "sam")
    with pytest.raises(WorkflowError, match="needs a written reason"):
        apply(CaseState(), "dismiss", ana, "  ")
    with pytest.raises(WorkflowError, match="cannot escalate a case that is filed"):
        apply(case, "escalate", ana)
