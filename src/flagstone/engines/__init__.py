"""Engines that run rules: each maps the rule intermediate form to its own constructs."""

from flagstone.engines.base import Engine, EngineError
from flagstone.engines.duckdb import DuckDBEngine, compile_rule
from flagstone.engines.spark import SparkEngine as SparkEngine  # pyspark itself is imported by the caller

__all__ = ["DuckDBEngine", "Engine", "EngineError", "compile_rule"]
