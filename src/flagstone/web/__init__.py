"""The case review web UI (``flagstone web``): server-rendered pages on FastAPI over the case database."""

from flagstone.web._app import create_web_app

__all__ = ["create_web_app"]
