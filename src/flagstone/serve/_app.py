"""The HTTP face of the scoring service (FastAPI): routes, API-key check, errors, metrics."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import MAXYEAR, UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstone import __version__
from flagstone.serve._intake import DEFAULT_BODY_LIMIT, BodyTooLarge, parse_body, read_body
from flagstone.serve._keys import KeyChecker
from flagstone.serve._metrics import Metrics
from flagstone.serve._models import Alerts, Decisions, Health, Problems, Unauthorized
from flagstone.serve._service import MAX_BATCH, Rejected, ScoringService, api_alert

DESCRIPTION = """\
Scores single events (or batches of up to 1,000) against the loaded rules, as they happen, and
answers with the alerts each event fires. An event is stored before it is answered; sending an
event again (same source and event id) returns the original decision and changes nothing.
Records are given in the fields of a configured source's ingest mapping (docs/mapping.md).
Every request except GET /v1/health needs `Authorization: Bearer <key>` (`flagstone keys create`).
A body larger than the service's limit (`flagstone serve --max-body-bytes`) is refused with 413.
"""
# Bodies larger than this are parsed and checked on a worker thread, not on the event loop that
# answers every other request.
INLINE_BYTES = 256 * 1024

# The body is read by hand (json.loads) on the hot path: FastAPI's validation of a free-form body
# costs more than the scoring. This is the schema it would document, and _intake.parse_body checks it.
BODY_DOC: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"type": "object", "additionalProperties": True},
                    {
                        "type": "array",
                        "items": {"type": "object", "additionalProperties": True},
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                    },
                ],
                "description": "One record, or a list of records, in the source's mapping (canonical events "
                "for a --source source).",
                "title": "Body",
            }
        }
    },
}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Unauthorized, "description": "No valid API key."},
    422: {"model": Problems, "description": "A record (or the request) is malformed; nothing was applied."},
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problems,
        "description": "The service has failed (see GET /v1/health) and is stopping; nothing was applied. "
        "Send the request again once it is back.",
    }
}


def _iso_time(value: Any) -> Any:
    """Pydantic would also read a number as Unix time; the document promises an ISO 8601 time."""
    try:
        float(value)
    except (TypeError, ValueError):
        return value
    raise ValueError("expected an ISO 8601 time such as 2024-03-31T14:05:00+02:00, not a number")


class _Timing:
    """Request count and latency per route, as plain ASGI (a fraction of BaseHTTPMiddleware's cost)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            self.metrics.observe(getattr(route, "path", "other"), status, time.perf_counter() - started)


def create_app(
    service: ScoringService, *, close_on_shutdown: bool = True, max_body_bytes: int = DEFAULT_BODY_LIMIT
) -> FastAPI:
    checker = KeyChecker(service.store.path)
    metrics = Metrics(service)
    bearer = HTTPBearer(auto_error=False, description="An API key made by `flagstone keys create`.")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await asyncio.to_thread(service.close)

    app = FastAPI(title="Flagstone scoring service", version=__version__, description=DESCRIPTION, lifespan=lifespan)

    # async: the check is in memory, and a sync dependency would cost a thread-pool hop per request
    async def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if credentials is None or not checker.valid(credentials.credentials):
            raise HTTPException(
                401, "a valid API key is required: Authorization: Bearer fsk_...", {"WWW-Authenticate": "Bearer"}
            )

    app.add_middleware(_Timing, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems: list[dict[str, Any]] = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":  # its loc holds a character offset, not a record's index
                reason = f"not valid JSON: {err.get('ctx', {}).get('error', 'decode error')}"
                problems.append({"index": None, "field": "body", "value": None, "reason": reason})
                continue
            loc = [str(p) for p in err.get("loc", ())]
            # ("body", "list[...]", 3, "ts"): the first number is the event's position in the batch
            index = next((int(p) for p in loc[1:3] if p.isdigit()), None)
            value = err.get("input")
            problems.append(
                {
                    "index": index,
                    "field": ".".join(loc) or None,
                    "value": None if value is None else str(value)[:200],
                    "reason": err.get("msg", "invalid").removeprefix("Value error, "),
                }
            )
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 for a body it cannot decode (not UTF-8 text): a malformed request like
        # any other, so the documented 422 with its problem list.
        if exc.status_code == 400:
            problem = {"index": None, "field": "body", "value": None, "reason": "not valid JSON (UTF-8 text)"}
            return JSONResponse(status_code=422, content={"detail": [problem]})
        return await http_exception_handler(request, exc)

    @app.post(
        "/v1/events",
        response_model=Decisions,
        responses={
            **ERRORS,
            409: {
                "model": Problems,
                "description": "An event id was accepted before with different content; nothing was applied.",
            },
            413: {
                "model": Problems,
                "description": "The body is larger than the service's limit; nothing was applied.",
            },
            **UNAVAILABLE,
        },
        dependencies=[Depends(require_key)],
        summary="Score one event, or a batch of up to 1,000",
        openapi_extra={"requestBody": BODY_DOC},
    )
    async def post_events(
        request: Request,
        source: Annotated[
            str | None,
            Query(
                description="The configured source (mapping) the records come from; "
                "may be left out when the service has one."
            ),
        ] = None,
    ) -> Any:
        try:
            raw = await read_body(request.stream(), request.headers.get("content-length"), max_body_bytes)
        except BodyTooLarge as exc:
            return JSONResponse(status_code=413, content={"detail": [exc.problem()]})
        inline = len(raw) <= INLINE_BYTES
        records, problem = parse_body(raw, MAX_BATCH) if inline else await asyncio.to_thread(parse_body, raw, MAX_BATCH)
        if problem is not None:
            return JSONResponse(status_code=422, content={"detail": [problem]})
        chosen = source or service.default_source
        if chosen is None:
            problem = {
                "index": None,
                "field": "source",
                "value": None,
                "reason": "several sources are configured; name one: " + ", ".join(sorted(service.intakes)),
            }
            return JSONResponse(status_code=422, content={"detail": [problem]})
        try:
            # submit checks every value of every record: on a worker thread for a large body
            future = (
                service.submit(chosen, records, len(raw))
                if inline
                else await asyncio.to_thread(service.submit, chosen, records, len(raw))
            )
            decisions = await asyncio.wrap_future(future)
        except Rejected as exc:
            return JSONResponse(status_code=exc.status, content={"detail": exc.errors})
        # Serialised here rather than re-validated through Decisions: the service builds exactly that
        # shape (tests/test_serve_openapi.py checks every answer against the document).
        return Response(json.dumps({"decisions": decisions}, default=str), media_type="application/json")

    @app.get(
        "/v1/alerts",
        response_model=Alerts,
        responses={**ERRORS, **UNAVAILABLE},
        dependencies=[Depends(require_key)],
        summary="Stored alerts, newest first",
    )
    def get_alerts(
        rule_id: Annotated[str | None, Query(description="Only this rule's alerts.")] = None,
        since: Annotated[
            datetime | None,
            BeforeValidator(_iso_time),
            Query(description="Only alerts fired at or after this time (UTC)."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> Any:
        try:
            service.flush()  # every alert decided before this request is listed
        except Rejected as exc:
            return JSONResponse(status_code=exc.status, content={"detail": exc.errors})
        except Exception:  # the store refuses the log (disk, ...): health says "degraded" meanwhile
            problem = {"index": None, "field": None, "value": None, "reason": service.health()[1] or "cannot absorb"}
            return JSONResponse(status_code=503, content={"detail": [problem]})
        where: list[str] = []
        args: list[Any] = []
        if rule_id is not None:
            where.append("rule_id = ?")
            args.append(rule_id)
        if since is not None:
            where.append("last_ts >= ?")
            try:
                args.append(since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since)
            except OverflowError:  # in UTC beyond year 1 or 9999: earlier or later than any alert
                args.append(datetime.max if since.year == MAXYEAR else datetime.min)
        sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        cur = service.reader().execute(sql + " ORDER BY last_ts DESC, alert_id LIMIT ?", [*args, limit])
        names = [d[0] for d in cur.description]
        return {"alerts": [api_alert(dict(zip(names, row, strict=True))) for row in cur.fetchall()]}

    @app.get(
        "/v1/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "The service has failed and is stopping (see reason)."}},
        summary="Is the service up (no key needed)",
    )
    def health() -> Any:
        status, reason = service.health()
        body = {
            "status": status,
            "reason": reason,
            "rules": len(service.rules),
            "sources": sorted(service.intakes),
            "events_in_state": service.counters.state_events,
        }
        return JSONResponse(status_code=503, content=body) if status == "failed" else body

    @app.get(
        "/v1/metrics",
        # Not PlainTextResponse: FastAPI would then document the JSON errors (401) as text/plain too.
        response_class=Response,
        dependencies=[Depends(require_key)],
        responses={
            **ERRORS,
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format."},
        },
        summary="Prometheus metrics",
    )
    def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
