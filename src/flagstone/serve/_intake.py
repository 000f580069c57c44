"""What a request must be before any of it reaches the writer.

The writer thread scores and logs whole groups of requests, so a value it cannot handle would fail
every request in the group. Everything a client can get wrong is therefore decided here, in the
request's own thread, and answered with a problem that names the record, the field and the value:

- the body: at most ``--max-body-bytes``, counted while it is read (``read_body``), whatever
  ``Content-Length`` says or whether the body is chunked; then JSON, one object or a list of 1 to
  1,000 objects, without a key twice in one object (``parse_body``);
- every value in a record, at any depth (``value_problem``): only JSON's own types, nested at most
  ``MAX_DEPTH`` levels; no NaN or Infinity (Python's ``json`` reads them, nothing else in the chain
  does); integers in the signed 64-bit range (DuckDB's JSON functions and Spark read no larger);
  text that is Unicode (no lone UTF-16 surrogate, which cannot be written as UTF-8) and without NUL
  characters (which PostgreSQL text cannot hold). Keys are checked as values are.

Checks that depend on the field (times, amounts, currencies) are the converters' (``_canonical``
for canonical events, the ingest's SQL for mapped records).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

MAX_DEPTH = 32  # levels of objects and lists in one record, the record itself included
INT_LIMIT = 2**63
DEFAULT_BODY_LIMIT = 10 * 2**20  # bytes; a full batch of 1,000 typical events is about 300 kB

Problem = dict[str, Any]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is larger than this service's limit of {limit:,} bytes")

    def problem(self) -> Problem:
        return {
            "index": None,
            "field": "body",
            "value": None,
            "reason": f"{self}; send fewer events per request (the limit is set by flagstone serve --max-body-bytes)",
        }


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it is known to exceed ``limit`` (before
    reading it when ``Content-Length`` says so, else once the chunks read so far do)."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


def _problem(index: int | None, field: str | None, value: Any, reason: str) -> Problem:
    shown = None if value is None else (value if isinstance(value, str) else _repr(value))
    return {
        "index": index,
        "field": None if field is None else printable(field[:200]),
        "value": None if shown is None else printable(shown[:200]),
        "reason": reason,
    }


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # an integer too long to print (sys.get_int_max_str_digits)
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"


def printable(text: str) -> str:
    """A value as it can be sent back in a JSON answer (a lone surrogate cannot be encoded)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as a dict, unless a key appears twice: parsers differ on which value wins (Python
    keeps the last, others the first), so such a record means different things to different readers."""
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return out


def parse_body(raw: bytes, max_batch: int) -> tuple[list[dict[str, Any]], Problem | None]:
    """The request's records, or the problem with the body as a whole."""
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys)
    except RecursionError:
        return [], _problem(None, "body", None, f"nested too deeply; a record may nest at most {MAX_DEPTH} levels")
    except (ValueError, UnicodeDecodeError) as exc:
        return [], _problem(None, "body", None, f"not valid JSON: {exc}")
    if isinstance(body, dict):
        return [body], None
    if not isinstance(body, list):
        return [], _problem(
            None, "body", None, f"expected a JSON object (one record) or a list of 1 to {max_batch:,} objects"
        )
    if not 1 <= len(body) <= max_batch:
        return [], _problem(
            None, "body", None, f"a list holds 1 to {max_batch:,} records; this one holds {len(body):,}"
        )
    for i, record in enumerate(body):
        if not isinstance(record, dict):
            return [], _problem(i, "body", str(record)[:200], "expected a JSON object")
    return body, None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the case database cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate (\\ud800 to \\udfff without its pair), which is not text"
    return None


def value_problem(index: int, record: Any) -> Problem | None:
    """The first value of ``record`` that nothing downstream can store, or None. Iterative, so
    that a record nested far deeper than Python's recursion limit is refused, not crashed on."""
    if not isinstance(record, dict):
        return _problem(index, None, str(record)[:200], "expected a JSON object")
    stack: list[tuple[str, Any, int]] = [("", record, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            reason = _text_problem(value)
            if reason:
                return _problem(index, path, value, reason)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -INT_LIMIT <= value < INT_LIMIT:
                return _problem(index, path, value, "integer outside the signed 64-bit range; send it as text")
        elif isinstance(value, float):
            if not math.isfinite(value):
                return _problem(index, path, value, "not a finite number (NaN and Infinity are not JSON numbers)")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return _problem(index, path, None, f"nested too deeply; a record may nest at most {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(value, dict):
                    if not isinstance(key, str):
                        return _problem(index, path or None, key, "an object key must be text")
                    reason = _text_problem(key)
                    if reason:
                        return _problem(index, f"{path}.{key}" if path else key, key, f"key {reason}")
                    child = f"{path}.{key}" if path else key
                else:
                    child = f"{path}[{key}]"
                stack.append((child, item, depth + 1))
        else:
            return _problem(index, path, value, f"{type(value).__name__} is not a JSON value")
    return None
