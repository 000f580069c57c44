"""Sessions, CSRF and response headers of the web UI.

- The session cookie is HttpOnly and SameSite=Strict (and Secure when configured), so scripts
  cannot read it and other sites cannot send it.
- Every state-changing request is a POST carrying the session's CSRF token in a form field; the
  log-in form, which has no session yet, uses a double-submit cookie instead. A request whose
  Origin header names another site is refused as well.
- Pages are never cached and cannot be framed; no script runs on them at all.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from flagstone.oversight.users import User

SESSION_COOKIE = "flagstone_session"
LOGIN_CSRF_COOKIE = "flagstone_login_csrf"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # "no-referrer" would make Chromium send "Origin: null" on the site's own form posts, which the
    # origin check must refuse; "same-origin" keeps referrers off other sites all the same.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    token: str


class NotLoggedIn(Exception):
    pass


class CsrfFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def tokens_match(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure, path="/", max_age=max_age)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)
