"""People's side of Flagstone: the case database (SQLite or PostgreSQL through SQLAlchemy), users and
roles, the four-eyes case workflow, reveals of identities, retention, and goAML reports."""

from flagstone.oversight import context, legacy

# Older cases get their version and clear reports are sealed whenever a case database is opened.
context.on_open(legacy.bring_forward)
