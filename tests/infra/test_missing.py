"""A missing service skips a test outside CI and fails it under CI=true, never passes silently."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.infra.services import free_port, missing_service, session_database

NOT_CI = ["", "0", "false", "no"]
CI = ["1", "true", "yes", "TRUE"]


@pytest.mark.parametrize("value", [None, *NOT_CI])
def test_a_missing_service_skips_outside_ci(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no broker here"):
        missing_service("no broker here")


@pytest.mark.parametrize("value", CI)
def test_a_missing_service_fails_under_ci(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"no broker here \(CI=true"):
        missing_service("no broker here")


@contextmanager
def hanging_up_server() -> Iterator[int]:
    """A TCP server that accepts each connection, reads a little and hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with conn:
                conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        listener.close()
        thread.join(5)
        assert not thread.is_alive()


@contextmanager
def pg_dsn(kind: str) -> Iterator[str]:
    if kind == "hangs up":  # asyncpg: ConnectionDoesNotExistError or ConnectionError
        with hanging_up_server() as port:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    elif kind == "refused":  # OSError
        yield f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    else:  # InterfaceError (ClientConfigurationError)
        yield f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?sslmode=bogus"


@pytest.mark.parametrize("kind", ["hangs up", "refused", "driver refuses the link"])
@pytest.mark.parametrize("ci", [None, "true"])
def test_no_postgres_server_skips_or_fails(
    kind: str, ci: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    expected = pytest.skip.Exception if ci is None else pytest.fail.Exception
    with pg_dsn(kind) as dsn:
        monkeypatch.setenv("LOCKHUB_TEST_PG_DSN", dsn)
        with pytest.raises(expected, match="no PostgreSQL server reachable"):
            session_database()
