"""Canonical events checked in Python (the scoring service's fast path) against the ingest's SQL
conversion of the same records with the canonical mapping: on random records, both accept the same
ones with the same values (pseudonyms included) and reject the same ones, on the same field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstone.ingest import CanonicalIntake, Pseudonymiser, RecordConverter, canonical_mapping_text, load_mapping
from flagstone.store import Store

times = st.builds(
    lambda d, h, m, s, frac, zone, sep: f"20{d:02d}-0{h % 9 + 1}-1{h % 9}{sep}{h:02d}:{m:02d}:{s:02d}{frac}{zone}",
    st.integers(0, 40),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", ".5", ".123456"]),
    st.sampled_from(["", "Z", "+02:00", "-05:30", "+00:00"]),
    st.sampled_from(["T", " "]),
)
bad_times = st.sampled_from(
    ["1700000000", "1.7e9", "yesterday", "2024-13-01T00:00:00", "2024-02-30T10:00:00", "", "1800-01-01T00:00:00"]
)
amounts = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False).map(str),
    st.sampled_from(["1.23456", "12.5", "0.0001", "100000000000000", "1e3", "abc", "", " 7 "]),
)
texts = st.one_of(st.none(), st.sampled_from(["", "  ", "x", "Acme Ltd", "ü-ñ", "a'b"]))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": draw(st.sampled_from(["e1", "e-2", " e3", ""])),
        "ts": draw(st.one_of(times, times, times, bad_times)),
        "kind": draw(st.sampled_from(["transfer", "purchase", " "])),
    }
    for name in ("actor", "counterparty", "item", "category", "place", "channel"):
        if draw(st.booleans()):
            record[name] = draw(texts)
    if draw(st.booleans()):
        record["amount"] = draw(amounts)
    if draw(st.booleans()):
        record["quantity"] = draw(amounts)
    if draw(st.booleans()):
        record["currency"] = draw(st.sampled_from(["EUR", "eur", " SEK ", "EURO", "", None]))
    return record


@pytest.fixture(scope="module")
def converters(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("canonical")
    mapping = folder / "api.yaml"
    mapping.write_text(canonical_mapping_text("api"))
    store = Store(folder / "s.duckdb")
    pseudonymiser = Pseudonymiser.for_store(store.path)
    with pseudonymiser.bound(store.con):
        yield (
            CanonicalIntake("api", pseudonymiser),
            RecordConverter(store.con, load_mapping(mapping), pseudonymiser),
        )
    store.close()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(records(), min_size=1, max_size=25))
def test_python_checks_equal_the_ingest_conversion(converters: Any, batch: list[dict[str, Any]]) -> None:
    """Whole batches at once: one SQL conversion per example keeps many records cheap to check."""
    fast, exact = converters
    got, got_errors = fast.convert(batch)
    want, want_errors = exact.convert(batch)
    assert [(e.index, e.field) for e in got_errors] == [(e.index, e.field) for e in want_errors]
    assert got == want


def test_identities_are_handed_over_once(converters: Any, tmp_path: Path) -> None:
    """Until they are stored, and only for the events the caller accepted."""
    fast, _ = converters
    fast.take_identities([])  # what the property test left
    events, _ = fast.convert([{"event_id": "x1", "ts": "2024-01-01T00:00:00", "kind": "t", "actor": "alice-new"}])
    first = fast.take_identities(events)
    assert len(first) == 1 and first[0][0].startswith("p_")
    events, _ = fast.convert([{"event_id": "x2", "ts": "2024-01-01T00:00:00", "kind": "t", "actor": "alice-new"}])
    again = fast.take_identities(events)
    assert [p for p, _, _ in again] == [first[0][0]]  # not stored yet: handed over again
    fast.stored(first)
    events, _ = fast.convert([{"event_id": "x3", "ts": "2024-01-01T00:00:00", "kind": "t", "actor": "alice-new"}])
    assert fast.take_identities(events) == []
    fast.convert([{"event_id": "x4", "ts": "2024-01-01T00:00:00", "kind": "t", "actor": "bob-new"}])
    assert fast.take_identities([]) == []  # the caller refused x4: bob's identity is not handed over
