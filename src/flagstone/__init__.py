"""Flagstone: explainable detection of crime-indicative patterns in event data.

The public API is re-exported here; everything else is internal.
"""

from flagstone.errors import (
    FlagstoneError,
    InputError,
    MappingError,
    RuleError,
    StoreError,
    UnsupportedError,
)
from flagstone.store import Store

__version__ = "0.1.0"

__all__ = [
    "FlagstoneError",
    "InputError",
    "MappingError",
    "RuleError",
    "Store",
    "StoreError",
    "UnsupportedError",
    "__version__",
]
