"""Every audit entry has a bounded size, whatever the caller passes.

An anonymous log-in with a 1 MB user name must not become a 2 MB signed entry (nor fail on a
database column and go unaudited). So before an entry is hashed, :func:`bounded_entry` cuts:

| part | at most |
|---|---|
| actor | ``MAX_ACTOR`` characters |
| target | ``MAX_TARGET`` characters |
| each text inside the details | ``MAX_TEXT`` characters |
| each list inside the details | ``MAX_ITEMS`` items |
| the details as JSON | ``MAX_DETAILS`` characters |

A text that is cut keeps its beginning and ends with a marker holding its original length and the
SHA-256 of the original (UTF-8), so a copy kept elsewhere can still be matched to the entry:
``alice…[1,048,576 characters, sha256 3f9a…]``. A list that is cut keeps its first items and one
marker for the rest. Characters no database column can hold (NUL, lone surrogates) become U+FFFD.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MAX_ACTOR = 200  # the audit_entries columns' sizes
MAX_TARGET = 400
MAX_TEXT = 1000
MAX_ITEMS = 100
MAX_DETAILS = 16_000
_UNSTORABLE = {0: 0xFFFD, **{c: 0xFFFD for c in range(0xD800, 0xE000)}}


def _digest(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def bounded_text(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its beginning and a length-and-hash marker."""
    clean = text.translate(_UNSTORABLE)
    if len(clean) <= limit:
        return clean
    marker = f"…[{len(text):,} characters, sha256 {_digest(text)}]"
    return clean[: max(limit - len(marker), 0)] + marker


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return bounded_text(value, MAX_TEXT)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {bounded_text(str(k), MAX_TEXT): _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        kept = [_bounded(v) for v in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            rest = json.dumps(items[MAX_ITEMS:], sort_keys=True, ensure_ascii=False, default=str)
            kept.append(f"…[{len(items) - MAX_ITEMS:,} more items, sha256 {_digest(rest)}]")
        return kept
    return bounded_text(str(value), MAX_TEXT)  # dates, paths, decimals: as their text


def bounded_details(details: Mapping[str, Any]) -> str:
    """The details as canonical JSON, every part bounded, the whole at most ``MAX_DETAILS``."""
    text = json.dumps(_bounded(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= MAX_DETAILS:
        return text
    summary = {"truncated": bounded_text(text, MAX_TEXT)}
    return json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def bounded_entry(actor: str, target: str, details: Mapping[str, Any]) -> tuple[str, str, str]:
    """(actor, target, details JSON) as they are stored and hashed."""
    return bounded_text(actor, MAX_ACTOR), bounded_text(target, MAX_TARGET), bounded_details(details)
