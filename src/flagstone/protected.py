"""Attributes Flagstone never uses in detection (GDPR Art. 9 special categories and the like).

Rules naming one of them are refused when they load. The canonical schemas hold none of them;
this check stops them coming in through ``attrs``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

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


def configured_match(reference: str, configured: Iterable[str]) -> str | None:
    """The configured protected field that ``reference`` (``amount``, ``attrs.x``, ``actor.country``)
    names: the same dotted name, or the same last part when the configuration gives a bare name."""
    last = reference.rpartition(".")[2]
    for name in configured:
        if name == reference or ("." not in name and name == last):
            return name
    return None


def references(node: object) -> set[str]:
    """Every field a rule's tree reads, as ``name``, ``attrs.name`` or ``role.name``."""
    from flagstone.rules import ir  # the rules import this module; import here to avoid a cycle

    out: set[str] = set()
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ir.Field):
            out.add(item.name)
        elif isinstance(item, ir.Attr):
            out.add(f"attrs.{item.name}")
        elif isinstance(item, ir.EntityField):
            out.add(f"{item.role}.{item.name}")
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            for f in dataclasses.fields(item):
                value = getattr(item, f.name)
                if f.name == "group_by" and isinstance(value, tuple):
                    out.update(v for v in value if isinstance(v, str))
                stack.append(value)
        elif isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return out
