"""Documentation is part of the product: every field, rule key, kind and command is documented."""

from __future__ import annotations

import re

import pytest
from conftest import REPO
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.events import CATALOGUE_COLUMNS, ENTITY_COLUMNS, EVENT_COLUMNS
from flagstone.rules.ir import AGGREGATE_FUNCTIONS
from flagstone.rules.kinds import KINDS
from flagstone.rules.reader import COMMON_KEYS

EVENTS_MD = (REPO / "docs" / "events.md").read_text()
RULES_MD = (REPO / "docs" / "rules.md").read_text()
README = (REPO / "README.md").read_text()
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)  # type: ignore[union-attr]


@pytest.mark.parametrize("col", EVENT_COLUMNS + ENTITY_COLUMNS + CATALOGUE_COLUMNS, ids=lambda c: c.name)
def test_every_column_is_documented_with_its_type(col: object) -> None:
    row = f"| `{col.name}` | {col.sql_type} |"  # type: ignore[attr-defined]
    assert row in EVENTS_MD


def test_every_rule_key_and_kind_is_documented() -> None:
    for key in [*COMMON_KEYS, *(k for kind in KINDS.values() for k in kind.keys)]:
        assert f"| `{key}` |" in RULES_MD, key
    for kind in KINDS:
        assert f"### `{kind}`" in RULES_MD, kind
    for fn in AGGREGATE_FUNCTIONS:
        assert re.search(rf"`{fn}\(", RULES_MD), fn


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme_and_has_help(command: str) -> None:
    assert f"flagstone {command}" in README
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert len(result.output) > 200


def test_readme_starts_with_the_two_setup_commands() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, re.S)
    assert blocks, "README has no command block"
    first = [line.split("#")[0].strip() for line in blocks[0].strip().splitlines()]
    assert first == ["make demo", "make test"]


OVERSIGHT_MD = (REPO / "docs" / "oversight.md").read_text()
GROUP_COMMANDS = sorted(
    (str(group.info.name), str(c.name))
    for group in (g.typer_instance for g in app.registered_groups if g.typer_instance is not None)
    for c in group.registered_commands
)


@pytest.mark.parametrize("group, command", GROUP_COMMANDS)
def test_every_subcommand_is_in_the_readme_and_has_help(group: str, command: str) -> None:
    assert f"flagstone {group} " in README
    result = CliRunner().invoke(app, [group, command, "--help"])
    assert result.exit_code == 0
    assert len(result.output) > 200


def test_the_roles_table_is_the_code() -> None:
    from flagstone.oversight.roles import PERMISSIONS, ROLES

    for action, roles in PERMISSIONS.items():
        cells = " | ".join("yes" if r in roles else "no" for r in ROLES)
        assert f"| `{action}` | {cells} |" in OVERSIGHT_MD, action


def test_every_audit_event_is_documented() -> None:
    from flagstone.audit.events import all_event_types, field_names

    for cls in all_event_types():
        details = ", ".join(f for f in field_names(cls) if f != cls.target_field)
        row = f"| `{cls.action}` | {cls.target_field} | {details} |".replace("|  |", "| |")
        assert row in OVERSIGHT_MD, cls.action


def test_every_configuration_key_is_documented() -> None:
    from pydantic import BaseModel

    from flagstone.config import Config

    def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            if name == "path":
                continue
            sub = info.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                out += keys(sub, f"{prefix}{name}.")
            else:
                out.append(prefix + name)
        return out

    for key in keys(Config):
        assert f"| `{key}` |" in OVERSIGHT_MD, key
