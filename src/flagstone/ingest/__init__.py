"""Ingestion: exports in, canonical events and reference rows out.

``ingest_file`` validates, quarantines and pseudonymises one file in one transaction;
``load_mapping`` reads a mapping (``docs/mapping.md``); ``Pseudonymiser`` makes the keyed
pseudonyms; ``RecordConverter`` converts single records (for the scoring service) exactly as an
ingest of the same lines would; ``CanonicalIntake`` takes canonical events without SQL, for speed.
"""

from flagstone.ingest._canonical import CanonicalEvent, CanonicalIntake, canonical_mapping_text
from flagstone.ingest._load import IngestResult, ingest_file
from flagstone.ingest._mapping import CsvOptions, FieldSpec, Mapping, load_mapping
from flagstone.ingest._pseudonym import Pseudonymiser, load_master_key
from flagstone.ingest._records import RecordConverter, RecordError

__all__ = [
    "CanonicalEvent",
    "CanonicalIntake",
    "CsvOptions",
    "FieldSpec",
    "IngestResult",
    "Mapping",
    "Pseudonymiser",
    "RecordConverter",
    "RecordError",
    "canonical_mapping_text",
    "ingest_file",
    "load_mapping",
    "load_master_key",
]
