"""Migration scripts; Alembic loads them by path (it skips this file)."""
