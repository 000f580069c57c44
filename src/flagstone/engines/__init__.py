"""Engines that run rules: each maps the rule intermediate form to its own constructs."""

from flagstone.engines.base import Engine, EngineError
from flagstone.engines.duckdb import DuckDBEngine, compile_rule

__all__ = ["DuckDBEngine", "Engine", "EngineError", "compile_rule"]
