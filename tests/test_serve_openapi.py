"""The scoring service keeps to its own OpenAPI document: schemathesis sends generated requests (valid
and invalid) to every operation, in-process over ASGI, and every answer must be documented (status
code, content type, body) and none may be a server error. The document itself is checked too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.schemas import BaseSchema

from flagstone.rules import load_rules
from flagstone.serve import ScoringService, create_app, create_key

REPO = Path(__file__).resolve().parent.parent
PACKS = [REPO / "packs" / p for p in ("aml", "precursors")]
OPERATIONS = [("POST", "/v1/events"), ("GET", "/v1/alerts"), ("GET", "/v1/health"), ("GET", "/v1/metrics")]
# The app's routes and the codes each can answer with (FastAPI's own 422 included).
EXPECTED_CODES = {
    ("post", "/v1/events"): {"200", "401", "409", "413", "422", "503"},
    ("get", "/v1/alerts"): {"200", "401", "422", "503"},
    ("get", "/v1/health"): {"200", "503"},
    ("get", "/v1/metrics"): {"200", "401"},
}
FUZZ = settings(max_examples=40, deadline=None, database=None)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """A service on a fresh store with the aml and precursors packs and a canonical source "api", and
    a valid key. The fixture closes the service: schemathesis keeps an ASGI lifespan per test."""
    path = tmp_path_factory.mktemp("openapi") / "api.duckdb"
    key = create_key(path, "schemathesis")
    service = ScoringService(path, list(load_rules(PACKS)), canonical=["api"])
    try:
        yield create_app(service, close_on_shutdown=False), key
    finally:
        service.close()


@pytest.fixture(scope="module")
def api(served: tuple[FastAPI, str]) -> BaseSchema:
    """The service's document as schemathesis sees it, sending the key for the declared bearer scheme
    (so its auth check can also try the calls without it). Unknown query parameters are ignored, as
    HTTP APIs commonly do, rather than counted as invalid input that must be refused."""
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": served[1]}}},
            "generation": {"allow-extra-parameters": False},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", served[0], config=config)


# schemathesis.pytest.from_fixture would fit, but its loader sets Node._nodeid, gone in pytest 9.2;
# so each operation is a parametrised test driving the operation's own strategy.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_documented(api: BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    """Every check schemathesis has (no 5xx, documented status and content type, body matching the
    schema, auth enforced, invalid input refused) on generated requests with a valid key."""
    if path == "/v1/health" and mode is GenerationMode.NEGATIVE:
        pytest.skip("no parameters, so no invalid request to make")
    operation = api[path][method]
    # A record's fields are the source's mapping's, which no JSON schema can give: an object that
    # fits the document may still be refused (documented 422), so "valid data accepted" cannot hold.
    excluded = [schemathesis.checks.positive_data_acceptance] if path == "/v1/events" else []

    seen: set[int] = set()

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Case) -> None:
        seen.add(case.call_and_validate(excluded_checks=excluded).status_code)

    check()
    if mode is GenerationMode.POSITIVE:  # the key was sent: the checks saw more than refusals
        assert seen - {401}, seen
        assert path == "/v1/events" or 200 in seen, seen


def _event(i: int, actor: str, amount: str, start: datetime = datetime(2024, 3, 1)) -> dict[str, Any]:
    ts = start + timedelta(hours=6 * i)
    return {
        "event_id": f"{actor}-{i}",
        "ts": ts.isoformat() + "Z",
        "kind": "cash_deposit",
        "actor": actor,
        "amount": amount,
        "currency": "EUR",
    }


@st.composite
def _batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Cash deposits, most just under 10,000 (aml.structuring); an id drawn again is a retry, or a
    conflict when its amount was changed."""
    events = []
    for i in draw(st.lists(st.integers(0, 40), min_size=1, max_size=8)):
        amount = "120" if i % 3 == 0 else "9500"
        tampered = draw(st.integers(0, 9)) == 0
        events.append(_event(i, "alice" if i % 2 else "bob", "1" if tampered else amount))
    return events


def test_real_events_get_documented_answers(api: BaseSchema, served: tuple[FastAPI, str]) -> None:
    """Generated requests rarely hold a valid event; these do, so decisions with alerts, retries and
    409 conflicts are checked against the document too."""
    post, alerts = api["/v1/events"]["POST"], api["/v1/alerts"]["GET"]

    def call(case: Case) -> Any:
        # Cases made by hand get no configured auth; a fresh dict, as schemathesis adds to it.
        return case.call_and_validate(headers={"Authorization": f"Bearer {served[1]}"})

    @FUZZ
    @given(batch=_batches())
    def check(batch: Any) -> None:  # Any: a list of dicts is not a JsonValue to mypy (invariance)
        if call(post.Case(body=batch, query={"source": "api"})).status_code == 200:
            assert call(alerts.Case(query={"limit": 1000})).status_code == 200

    check()
    # And for certain: an alert, a retry and a conflict. The last day events may have: none is
    # later, so these are not late (lateness is measured from the newest event of all).
    batch: Any = [_event(i, "carol", "9900.5", datetime(2199, 12, 31)) for i in range(3)]
    first = call(post.Case(body=batch)).json()["decisions"]
    assert first[2]["alerts"][0]["rule_id"] == "aml.structuring"
    again = call(post.Case(body=batch)).json()["decisions"]
    assert [d["retry"] for d in again] == [True] * 3 and again[2]["alerts"] == first[2]["alerts"]
    changed: Any = [_event(1, "carol", "9900.6", datetime(2199, 12, 31))]
    assert call(post.Case(body=changed)).status_code == 409
    listed = call(alerts.Case(query={"rule_id": "aml.structuring", "since": "2199-12-31T01:00:00+01:00"}))
    assert first[2]["alerts"][0] in listed.json()["alerts"]


# Requests random generation seldom makes, each once an answer outside the document or a 500; the
# last item is the index a refusal names (None: the request as a whole).
BIG = b"[" + b" " * (11 * 2**20) + b"]"
EDGES = {
    "body not UTF-8": ("POST", "/v1/events", {"body": b"\x80abc", "media_type": "application/json"}, 422, None),
    "body not JSON": ("POST", "/v1/events", {"body": b'[{"event_id": ', "media_type": "application/json"}, 422, None),
    "body too large": ("POST", "/v1/events", {"body": BIG, "media_type": "application/json"}, 413, None),
    "ts before 1 in UTC": (
        "POST",
        "/v1/events",
        {"body": {"event_id": "e", "ts": "0001-01-01T00:00:00+14:00", "kind": "k"}, "media_type": "application/json"},
        422,
        0,
    ),
    "NaN in attrs": (
        "POST",
        "/v1/events",
        {
            "body": b'{"event_id": "e", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"x": NaN}}',
            "media_type": "application/json",
        },
        422,
        0,
    ),
    "since a number": ("GET", "/v1/alerts", {"query": {"since": "1700000000"}}, 422, None),
    "since after 9999 in UTC": ("GET", "/v1/alerts", {"query": {"since": "9999-12-31T23:59:59-23:59"}}, 200, None),
    "since before 1 in UTC": ("GET", "/v1/alerts", {"query": {"since": "0001-01-01T00:00:00+14:00"}}, 200, None),
}


@pytest.mark.parametrize(("method", "path", "parts", "status", "index"), EDGES.values(), ids=EDGES.keys())
def test_edge_requests_get_documented_answers(
    api: BaseSchema,
    served: tuple[FastAPI, str],
    method: str,
    path: str,
    parts: dict[str, Any],
    status: int,
    index: int | None,
) -> None:
    case = api[path][method].Case(**parts)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {served[1]}"})
    assert response.status_code == status, response.text
    if status in (413, 422):
        assert [p["index"] for p in response.json()["detail"]] == [index]


def test_the_document_is_complete(served: tuple[FastAPI, str]) -> None:
    """Each route has a summary and documents every code it can answer with, with its content type; the
    key scheme is declared and required everywhere except /v1/health."""
    doc = served[0].openapi()
    routes = {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert set(routes) == set(EXPECTED_CODES)
    for (method, path), op in routes.items():
        assert op.get("summary"), f"{method} {path} has no summary"
        assert EXPECTED_CODES[(method, path)] <= set(op["responses"]), f"{method} {path}: {sorted(op['responses'])}"
        for code, response in op["responses"].items():
            assert response.get("description"), f"{method} {path} {code} has no description"
            types = set(response.get("content", {}))
            expected = {"text/plain"} if (path, code) == ("/v1/metrics", "200") else {"application/json"}
            assert types == expected, f"{method} {path} {code}: {sorted(types)}"
        secured = bool(op.get("security"))
        assert secured == (path != "/v1/health"), f"{method} {path}: security {op.get('security')}"
    schemes = doc["components"]["securitySchemes"]
    assert list(schemes.values()) == [
        {"type": "http", "scheme": "bearer", "description": "An API key made by `flagstone keys create`."}
    ]
    for op in routes.values():
        for requirement in op.get("security", []):
            assert set(requirement) <= set(schemes)
