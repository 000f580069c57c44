"""The real-time back end: rules evaluated incrementally, one event at a time, in memory
(``engine``), with running aggregates (``aggregates``) and expressions compiled to closures
(``expr``). It runs the condition, window and sequence kinds (``sequence``, with the account view
of ``legs``) and the fan typologies of the graph kind."""

from flagstone.engines.realtime.engine import BUILDERS, Decision, RealtimeEngine, check_supported, order_key, replay

__all__ = ["BUILDERS", "Decision", "RealtimeEngine", "check_supported", "order_key", "replay"]
