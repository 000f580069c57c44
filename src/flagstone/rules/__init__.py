"""Rules: YAML files parsed into a typed intermediate form, run by interchangeable back ends."""

from flagstone.rules.ir import Rule
from flagstone.rules.kinds.condition import ConditionRule
from flagstone.rules.kinds.window import WindowRule
from flagstone.rules.loader import RuleSet, load_rules, parse_duration

__all__ = ["ConditionRule", "Rule", "RuleSet", "WindowRule", "load_rules", "parse_duration"]
