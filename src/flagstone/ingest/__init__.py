"""Ingestion: exports in, canonical events and reference rows out.

``ingest_file`` validates, quarantines and pseudonymises one file in one transaction;
``load_mapping`` reads a mapping (``docs/mapping.md``); ``Pseudonymiser`` makes the keyed
pseudonyms, so that a real-time scorer can pseudonymise single values the same way.
"""

from flagstone.ingest._load import IngestResult, ingest_file
from flagstone.ingest._mapping import CsvOptions, FieldSpec, Mapping, load_mapping
from flagstone.ingest._pseudonym import Pseudonymiser, load_master_key

__all__ = [
    "CsvOptions",
    "FieldSpec",
    "IngestResult",
    "Mapping",
    "Pseudonymiser",
    "ingest_file",
    "load_mapping",
    "load_master_key",
]
