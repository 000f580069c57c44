"""The outermost layer of the web UI: every answer carries the security headers, a request body
has a size limit, and an error of our own is a plain 500 page (with a reference to the log),
never a traceback nor an answer without the headers.

A pure ASGI middleware rather than FastAPI's ``@app.middleware``: it sees every response,
including those made by exception handlers and by Starlette itself (404, 405, 400), and an
exception no handler took reaches it before Starlette's own last-resort answer, which has no
headers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from html import escape
from typing import Any

from starlette.exceptions import HTTPException

from flagstone.web._security import HEADERS

MAX_BODY = 1024 * 1024  # bytes of a request body; forms here are a few kB
log = logging.getLogger("flagstone.web")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
OnError = Callable[[Scope, BaseException, str], None]


class BodyTooLarge(HTTPException):
    """Raised while the body is read. An HTTPException, so that FastAPI's form parsing passes it on
    (any other error there becomes a 400) and the app's handler answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"A request body may have {limit:,} bytes at most.")


class Guard:
    def __init__(self, app: Any, on_error: OnError | None = None, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.on_error = on_error
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower().encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _page(send_with_headers, 413, "Too large", BodyTooLarge(self.max_body).detail)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except BodyTooLarge as exc:
            if not started:
                await _page(send_with_headers, 413, "Too large", exc.detail)
        except Exception as exc:  # the last resort: whatever it was, answer without leaking it
            ref = secrets.token_hex(6)
            log.exception("request %s %s failed (reference %s)", scope.get("method"), scope.get("path"), ref)
            if self.on_error is not None:
                try:
                    self.on_error(scope, exc, ref)
                except Exception:  # the answer matters more than the record of it
                    log.exception("could not audit the failure %s", ref)
            if not started:
                await _page(send_with_headers, 500, "Error", f"Something went wrong on our side (reference {ref}).")


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _page(send: Send, status: int, title: str, message: str) -> None:
    """A page that needs nothing that might have failed (no template, no database)."""
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status} · Flagstone case review</title>'
        f'<link rel="stylesheet" href="/static/style.css"></head><body><main><h1>{escape(title)}</h1>'
        f'<p class="error" id="error-message">{escape(message)}</p><p><a href="/">Back</a></p></main></body></html>'
    ).encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
