"""The real-time scoring service (``flagstone serve``): one event in, a decision out.

``ScoringService`` stores and scores events (group commit, rebuild on start-up); ``create_app``
puts FastAPI in front of it; ``create_key`` makes the API keys it accepts. ``docs/serve.md`` is
the user's guide.
"""

from flagstone.ingest import canonical_mapping_text
from flagstone.serve._absorb import SetAside
from flagstone.serve._app import create_app
from flagstone.serve._intake import DEFAULT_BODY_LIMIT
from flagstone.serve._keys import create_key, list_keys, revoke_key
from flagstone.serve._service import MAX_BATCH, Rejected, ScoringService

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "MAX_BATCH",
    "Rejected",
    "ScoringService",
    "SetAside",
    "canonical_mapping_text",
    "create_app",
    "create_key",
    "list_keys",
    "revoke_key",
]
