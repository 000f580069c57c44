"""Debian's chromium for the tests that render pages, found once; skipped where it is missing,
except in CI (``FLAGSTONE_REQUIRE_BROWSER=1`` after installing it), where that is a failure."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No background traffic (the machines reach only package registries), no sandbox (tests run as root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium(*also: tuple[str, object]) -> str:
    """Chromium's path; ``also`` names further needs, e.g. ("playwright", the imported module or None)."""
    missing = [name for name, ok in (("chromium", CHROMIUM), *also) if not ok]
    if missing:
        if os.environ.get("FLAGSTONE_REQUIRE_BROWSER"):
            pytest.fail(f"{' and '.join(missing)} required (FLAGSTONE_REQUIRE_BROWSER is set) but not installed")
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install chromium; pip install playwright)")
    assert CHROMIUM is not None
    return CHROMIUM
