"""Who may do what: the four roles and the actions each may take.

Rights are by role here and by team in :mod:`flagstone.oversight.access`: analysts and supervisors
see their own team's cases; auditors read every case (pseudonyms only) and the audit log; admins
manage users and see no case data at all.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["analyst", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "supervisor", "auditor", "admin")

REVIEWERS = frozenset({"analyst", "supervisor"})
# Roles that can reveal, approve, file or make others so: granting one needs a second admin.
PRIVILEGED = frozenset({"supervisor", "admin"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "view_cases": frozenset({"analyst", "supervisor", "auditor"}),
    "comment": REVIEWERS,
    "assign": REVIEWERS,
    "escalate": REVIEWERS,
    "dismiss": REVIEWERS,
    "propose": REVIEWERS,
    "reveal": frozenset({"supervisor"}),
    "approve": frozenset({"supervisor"}),
    "reject": frozenset({"supervisor"}),
    "download_report": frozenset({"supervisor"}),
    "file": frozenset({"supervisor"}),
    "view_audit": frozenset({"auditor"}),
    "manage_users": frozenset({"admin"}),
    # Which triage model orders every queue: a supervisor's decision, audited.
    "activate_triage_model": frozenset({"supervisor"}),
}


def allowed(role: str, action: str) -> bool:
    return role in PERMISSIONS.get(action, frozenset())
