"""People's side of Flagstone: the case database (SQLite or PostgreSQL through SQLAlchemy), users and
roles, the four-eyes case workflow, reveals of identities, retention, and goAML reports."""
