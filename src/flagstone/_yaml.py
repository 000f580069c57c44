"""YAML loading that remembers line numbers, so errors can name the line of a bad field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flagstone.errors import InputError


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


def _walk(node: yaml.Node, at: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*at, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_located(path: str | Path, error: type[InputError] = InputError) -> LocatedYaml:
    """Parse one YAML document; syntax errors are raised as ``error`` with the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read file: {exc}", path=path) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise error(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=path, line=line) from exc
    lines: dict[tuple[Any, ...], int] = {}
    data = _walk(node, (), lines) if node is not None else None
    return LocatedYaml(data=data, path=path, lines=lines)
