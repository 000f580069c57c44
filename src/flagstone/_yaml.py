"""YAML loading that remembers line numbers, so errors can name the line of a bad field.

The one way Flagstone reads YAML: rules, parameter files, mappings, ``flagstone.yaml`` and
``--set`` values all come through :func:`load_located` or :func:`load_text`. What it accepts is
plain data, and it is bounded, because these files may come from someone else:

- no anchors (``&a``) or aliases (``*a``): a recursive alias would never end, and nested aliases
  ("billion laughs") expand a few lines into billions of values; nothing in Flagstone's files
  needs them, so a copy written out is asked for instead;
- no merge keys (``<<``), which only make sense with aliases, and no key that is not a plain value;
- no key twice in one mapping (the second would silently win);
- at most ``MAX_DEPTH`` levels of nesting and ``MAX_BYTES`` of text;
- only the standard scalar types: an unknown tag (``!!python/object``), a timestamp that is not a
  date or a number too long to convert is an error at its line, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flagstone.errors import InputError

MAX_BYTES = 1 << 20  # 1 MiB: a rule, mapping or configuration is a few KB
MAX_DEPTH = 64


@dataclass
class LocatedYaml:
    """Plain data from a YAML file plus the 1-based line of every mapping key and list item.

    ``lines`` is keyed by the path to a value, e.g. ``("aggregates", "n")`` or ``("items", 0)``.
    """

    data: Any
    path: Path
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line(self, *keys: Any) -> int | None:
        """Line of the deepest known key on this path (falls back to its parents)."""
        for n in range(len(keys), -1, -1):
            if keys[:n] in self.lines:
                return self.lines[keys[:n]]
        return None


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases while composing, and bounds the depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML aliases (*{event.anchor}) are not allowed; write the value out in full", event.start_mark
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                f"YAML anchors (&{event.anchor}) are not allowed; write the value out where it is needed",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _walk(loader: _PlainLoader, node: yaml.Node, at: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused("merge keys (<<) are not allowed; write the keys out", key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused("a mapping key must be a plain value, not a list or mapping", key_node.start_mark)
            key = _scalar(loader, key_node)
            if key in out:
                first = lines.get((*at, key))
                raise _Refused(f"key {key!r} appears twice (first on line {first})", key_node.start_mark)
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*at, i), lines) for i, item in enumerate(node.value)]
    return _scalar(loader, node)


def _scalar(loader: _PlainLoader, node: yaml.Node) -> Any:
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _Refused(f"cannot read the value {_short(node.value)}: {problem}", node.start_mark) from exc
    return value


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def load_text(text: str, path: str | Path, error: type[InputError] = InputError) -> LocatedYaml:
    """Parse one YAML document given as text; ``path`` names it in errors."""
    if len(text) > MAX_BYTES:
        raise error(f"{len(text):,} characters of YAML; at most {MAX_BYTES:,} are read", path=path)
    lines: dict[tuple[Any, ...], int] = {}
    try:
        loader = _PlainLoader(text)  # the reader refuses some characters (NUL) already here
        try:
            node = loader.get_single_node()
            data = _walk(loader, node, (), lines) if node is not None else None
        finally:
            loader.dispose()
    except _Refused as exc:
        raise error(str(exc), path=path, line=exc.line) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise error(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", path=path, line=line) from exc
    return LocatedYaml(data=data, path=Path(path), lines=lines)


def load_located(path: str | Path, error: type[InputError] = InputError) -> LocatedYaml:
    """Parse one YAML file; syntax errors and refused constructs are raised as ``error`` with the line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error(f"{size:,} bytes; a YAML file of at most {MAX_BYTES:,} bytes is read", path=path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read file: {exc}", path=path) from exc
    return load_text(text, path, error)
