"""A mapping's names checked against special categories when it loads, as rules are.

Checking rules alone is not enough: a mapping could put a ``religion`` column into ``attrs.r1`` or
into ``channel``, and every rule over those would then read religion. So a mapping is refused
when it reads a source column whose name is a special category (``flagstone.protected``) or a
bare name of ``protected_fields``, and when it writes an attribute with a special name or a field
``protected_fields`` lists. A column the deployment has declared (``declared_special_columns``,
with its purpose) may be kept, but only as ``attrs.<its own name>``, which no rule may read.

Names are compared by their skeleton (case, width, accents, invisible characters and lookalike
letters ignored). Values are never inspected: a column ``x1`` holding religion passes unless declared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flagstone.config import Config, DeclaredColumn
from flagstone.errors import MappingError
from flagstone.protected import configured_match, protected_match, skeleton

Fail = Callable[..., MappingError]
# Bidirectional controls make a name show as something else ('\u202enoigiler' reads 'religion').
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_HOW = (
    "leave it unmapped, or have the data protection officer declare it with its purpose in "
    "`declared_special_columns` of the configuration (docs/oversight.md)"
)


def shown(name: str) -> str:
    """A name as messages print it: escaped when it holds anything but printable ASCII, so a
    lookalike letter or an invisible character shows (and no terminal escape reaches the screen)."""
    return name if name.isascii() and name.isprintable() else ascii(name)[1:-1]


def refuse_special(
    fail: Fail, source: str, placed: Sequence[tuple[str, str | None, tuple[Any, ...], bool]], config: Config
) -> None:
    """``placed``: for each mapped field, (target such as ``channel`` or ``attrs.x``, source column
    or None, its YAML keys, whether it is written as ``{column: ...}``)."""
    bare = [n for n in config.protected_fields if "." not in n]
    for target, column, keys, long_form in placed:
        column_keys = (*keys, "column") if long_form else keys
        for name, where in ((column, column_keys), (target, keys)):
            if name is not None and _BIDI & set(name):
                raise fail(
                    f"'{shown(name)}' holds bidirectional control characters, which make a name show as "
                    "another; rename the column or the attribute",
                    *where,
                    value=name,
                )
        declared = _declared(column, source, config.declared_special_columns) if column is not None else None
        key = target.removeprefix("attrs.")
        if declared is not None:
            assert column is not None
            if not target.startswith("attrs.") or skeleton(key) != skeleton(column):
                raise fail(
                    f"source column '{shown(column)}' is declared special-category data ({declared.purpose.strip()}); "
                    f"it may be kept only as attrs.{shown(column)}, which no rule may read, not as {shown(target)}",
                    *keys,
                    value=column,
                )
            continue
        if column is not None:
            if (stem := protected_match(column)) is not None:
                raise fail(
                    f"source column '{shown(column)}' looks like a special category ('{stem}'): mapped to "
                    f"{shown(target)} it would let rules use it under another name; {_HOW}",
                    *column_keys,
                    value=column,
                )
            if (name := configured_match(column, bare)) is not None:
                raise fail(
                    f"source column '{shown(column)}' is a field the configuration marks protected ('{name}'); {_HOW}",
                    *column_keys,
                    value=column,
                )
        if target.startswith("attrs.") and (stem := protected_match(key)) is not None:
            raise fail(
                f"attribute '{shown(key)}' looks like a special category ('{stem}'), which no rule may read; "
                f"if its column holds such data, {_HOW}",
                *keys,
                value=key,
            )
        if (name := configured_match(target, config.protected_fields)) is not None:
            raise fail(
                f"{shown(target)} is a field the configuration marks protected ('{name}'): no mapping may write it",
                *keys,
                value=target,
            )


def _declared(column: str, source: str, declared: Sequence[DeclaredColumn]) -> DeclaredColumn | None:
    want = skeleton(column)
    for d in declared:
        if skeleton(d.column) == want and d.source in (None, source):
            return d
    return None
