"""Alembic migrations of the cloud database, shipped in the package (see store.migrate)."""
