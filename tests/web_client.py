"""Log in to the case review through its form, and read what a page's forms would send, the way a
browser does (for tests that drive the app with FastAPI's TestClient)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from oversight_data import PASSWORD


def login(app: Any, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert r.status_code == 303, r.text
    return client


def form(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form that posts to ``action`` on a page ({} when there is none)."""
    match = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    if match is None:
        return {}
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', match.group(1)))
