"""The workflow every engine shares; engines fill in a few hooks.

``Engine.run`` is final: it checks that the engine supports the rule, executes it, and wraps any
engine failure with the rule id (and, for SQL engines, the statement) so errors are actionable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from flagstone.errors import FlagstoneError
from flagstone.rules import ir
from flagstone.rules.finding import Finding


class EngineError(FlagstoneError):
    """An engine failed while running a rule."""


class Engine(ABC):
    name: str = "engine"

    def run(self, rule: ir.Rule) -> list[Finding]:
        self.check_supported(rule)
        try:
            return self.execute(rule)
        except FlagstoneError:
            raise
        except Exception as exc:
            raise EngineError(f"rule '{rule.meta.id}' failed on the {self.name} engine: {exc}") from exc

    def check_supported(self, rule: ir.Rule) -> None:  # noqa: B027 - optional hook
        """Raise UnsupportedError for rule features this engine cannot express."""

    @abstractmethod
    def execute(self, rule: ir.Rule) -> list[Finding]:
        """Run one rule over the engine's events and return its findings."""
