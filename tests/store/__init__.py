"""Tests of gateway.store: the hub's SQLite state, outbox and crash safety."""
