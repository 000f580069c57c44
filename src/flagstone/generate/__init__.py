"""Demo data: realistic bank, shop and transit exports with planted, labelled scenarios.

``generate_demo`` writes the exports, their ingest mappings, the reference files and
``labels.csv``, which names every record of every planted scenario (suspicious cases for each
shipped rule, and near-miss decoys that must not fire) so that ``flagstone evaluate`` can
measure each rule's precision and recall.
"""

from flagstone.generate._core import LABEL_COLUMNS, GeneratedInfo, generate_demo
from flagstone.generate._scenarios import PACK_PARAMS, RULE_IDS

__all__ = ["LABEL_COLUMNS", "PACK_PARAMS", "RULE_IDS", "GeneratedInfo", "generate_demo"]
