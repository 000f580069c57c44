"""The DuckDB engine: each rule becomes one SQL statement over the events table, built by the
module of its kind (``condition``, ``window``, ``graph`` and its typologies, ``sequence``,
``deviation``, ``dormancy``) from the shared leaves (``sql``) and steps (``steps``)."""

from flagstone.engines.duckdb.engine import BUILDERS, DuckDBEngine, compile_rule

__all__ = ["BUILDERS", "DuckDBEngine", "compile_rule"]
