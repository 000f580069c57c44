"""The Apache Spark engine: each rule becomes one Spark SQL statement over two temporary views,
built by the module of its kind (``condition``, ``window``, ``graph`` and its typologies,
``sequence``, ``deviation``, ``dormancy``). pyspark itself is imported by the caller (``load``,
``scan``), so the core installs without it."""

from flagstone.engines.spark.engine import BUILDERS, SparkEngine

__all__ = ["BUILDERS", "SparkEngine"]
