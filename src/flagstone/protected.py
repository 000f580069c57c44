"""Attributes Flagstone never uses in detection (GDPR Art. 9 special categories and the like).

Rules naming one of them are refused when they load. The canonical schemas hold none of them;
this check stops them coming in through ``attrs``.
"""

from __future__ import annotations

import re

# Stems, so that e.g. "religious_group" and "ethnic_origin" are caught too.
PROTECTED_STEMS: tuple[str, ...] = (
    "ethnic",  # protected
    "race",  # protected
    "racial",  # protected
    "religio",  # protected
    "belief",  # protected
    "politic",  # protected
    "party_member",  # protected
    "health",  # protected
    "medical",  # protected
    "disabilit",  # protected
    "sexual",  # protected
    "sex_orient",  # protected
    "union",  # protected (trade-union membership)
    "biometric",  # protected
    "genetic",  # protected
)
PROTECTED_REFUSAL = (
    "rules may not use protected attributes: ethnicity, religion, political opinion, health, "  # protected
    "sexual orientation or trade-union membership"  # protected
)
_PROTECTED = re.compile("|".join(PROTECTED_STEMS), re.IGNORECASE)


def protected_match(name: str) -> str | None:
    """The protected stem that ``name`` contains, if any."""
    m = _PROTECTED.search(name)
    return m.group(0) if m else None
