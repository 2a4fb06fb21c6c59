"""Tests of the cloud store and domain service, on SQLite and PostgreSQL."""
