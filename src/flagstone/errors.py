"""Every error Flagstone raises on purpose, in one hierarchy.

``FlagstoneError`` is the root; the CLI prints any of them as one clear line and exits 2.

- ``InputError``: something a user gave us is wrong. It carries where (``path``, ``line``,
  ``field``), the offending ``value`` and what was expected, so the message can be acted on.
  - ``RuleError``: a rule file (YAML or one of its expressions).
  - ``MappingError``: an ingest mapping file.
  - ``AuditKeyError``: the audit log's signing key is missing, or is not the key of this log.
- ``UnsupportedError``: a back end cannot run a rule feature. It names the rule, the feature
  and the engine, so a rule never silently gives different results on different engines.
- ``StoreError``: the event store is missing, locked or not a Flagstone store.
- ``ModelError``: a triage model cannot be used: the extra that runs it is not installed, its files
  are missing or changed since it was saved, or it was trained on other features than it is given.

A message often quotes what a user gave (a file name, a column header, a value), so before it
reaches a terminal it goes through :func:`printable`: escape sequences, carriage returns, bells
and bidirectional overrides in a hostile file would otherwise act on the terminal that shows them.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

# Control (Cc: C0, DEL, C1), format (Cf: bidi overrides and isolates, zero-width marks), lone
# surrogates (Cs: undecodable bytes kept by surrogateescape) and the line/paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
MAX_SHOWN = 4000  # characters of one message shown; the rest is counted, not printed


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` safe to show on a terminal: every control, format or surrogate character written
    as a visible escape (``\\x1b``, ``\\u202e``), and at most ``limit`` characters of it."""
    out = []
    for ch in text[:limit]:
        if unicodedata.category(ch) in _UNPRINTABLE:
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
        else:
            out.append(ch)
    if len(text) > limit:
        out.append(f" ... ({len(text) - limit:,} more characters)")
    return "".join(out)


def printable_json(text: str) -> str:
    """JSON text safe to show on a terminal: the same characters as :func:`printable`, written as
    JSON escapes (``\\u202e``), so the text is still valid JSON with the same value."""

    def escaped(ch: str) -> str:
        if unicodedata.category(ch) not in _UNPRINTABLE:
            return ch
        units = ch.encode("utf-16-le", "surrogatepass")
        return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'little'):04x}" for i in range(0, len(units), 2))

    return "".join(escaped(ch) for ch in text)


class FlagstoneError(Exception):
    """Root of all deliberate Flagstone errors."""


class InputError(FlagstoneError):
    """Bad user input, located as precisely as we can."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        value: Any = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.value = value
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        parts = [where] if where else []
        if self.field:
            parts.append(f"field '{self.field}'")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class RuleError(InputError):
    """A rule file is invalid."""


class MappingError(InputError):
    """An ingest mapping file is invalid."""


class AuditKeyError(InputError):
    """The audit signing key cannot be used: missing, unreadable, or not the key this log was signed with."""


class UnsupportedError(FlagstoneError):
    """A back end cannot express a rule feature."""

    def __init__(self, rule_id: str, feature: str, engine: str) -> None:
        self.rule_id = rule_id
        self.feature = feature
        self.engine = engine
        super().__init__(f"rule '{rule_id}': {feature} is not supported by the {engine} engine")


class StoreError(FlagstoneError):
    """The event store cannot be used."""


class ModelError(FlagstoneError):
    """A triage model cannot be used (not installed, files missing or changed, other features)."""
