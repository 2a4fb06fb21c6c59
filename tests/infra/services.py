"""Private services for tests: a mosquitto subprocess per test and a PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

# Mosquitto binds within milliseconds; 10 s covers a loaded 2-core CI box.
BROKER_START_TIMEOUT = 10.0
# SIGTERM makes mosquitto write its persistence file; it normally exits in well under 1 s.
BROKER_STOP_TIMEOUT = 10.0
PG_DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Test ports: blocks of 1,500 from 20,000 (the master process, then one per xdist worker),
# below Linux's default ephemeral range (32768-60999).
PORT_BLOCKS_START = 20_000
PORT_BLOCK_SIZE = 1_500
PORT_BLOCKS = 8
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL_LOW_DEFAULT = 32_768
_port_turn = itertools.count()


def in_ci() -> bool:
    """True when running under CI, where a missing service fails instead of skipping."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_service(what: str) -> NoReturn:
    """Fail under CI, skip elsewhere: a missing service never hides in a green CI run."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: a missing service is a failure)")
    pytest.skip(what)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and stays this test process's own.

    A port the OS picks (bind to 0) comes from the ephemeral range, where any outgoing
    connection may take it as its local port: a server a test stops and starts again on its
    port (the broker, a cloud killed mid-ingest) then fails with "address already in use".
    So ports come from below that range, each pytest-xdist worker from a block of its own, in
    turn, each checked free before it is handed out.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    block = int(worker.removeprefix("gw")) + 1 if worker.startswith("gw") else 0
    base = PORT_BLOCKS_START + (block % PORT_BLOCKS) * PORT_BLOCK_SIZE
    if base + PORT_BLOCK_SIZE > _ephemeral_low():
        return _os_picked_port()  # a kernel tuned to hand out low ports: no range is safe
    for _ in range(PORT_BLOCK_SIZE):
        port = base + next(_port_turn) % PORT_BLOCK_SIZE
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in 127.0.0.1:{base}-{base + PORT_BLOCK_SIZE - 1}")


def _ephemeral_low() -> int:
    try:
        return int(Path(EPHEMERAL_RANGE_FILE).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_LOW_DEFAULT


def _os_picked_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class MosquittoBroker:
    """A private mosquitto on a free port with persistence, that tests can stop and kill.

    By default it writes an anonymous plain-TCP config (plus ``extra_config``). A test that
    needs other listeners (TLS, no anonymous access) passes the whole file as ``config_text``;
    that text must listen on ``port`` at 127.0.0.1 and should log to ``log_path``.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None
    config_text: str | None = None

    @property
    def url(self) -> str:
        """The mqtt:// URL of this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where mosquitto writes its log."""
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        if self.config_text is not None:
            conf.write_text(self.config_text)
            return conf
        conf.write_text(
            # As root, mosquitto would drop to user "mosquitto" and lose write access here.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
            f"{self.extra_config}\n"
        )
        return conf

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self._write_config()
        self.process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + BROKER_START_TIMEOUT
        while not port_open(self.port):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err.strip()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not listen on {self.port}")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.process is not None and self.process.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(BROKER_STOP_TIMEOUT)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): mosquitto saves its persistent sessions."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill without warning (SIGKILL): anything not yet saved is lost, as in a crash."""
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        """Stop gracefully and start again on the same port."""
        self.stop()
        self.start()


def mosquitto_available() -> bool:
    """True when a mosquitto binary can be found."""
    return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()


@dataclass(frozen=True)
class PostgresDatabase:
    """A fresh database created for this test session."""

    dsn: str
    name: str


def _admin_dsn() -> str:
    return os.environ.get("LOCKHUB_TEST_PG_DSN", PG_DEFAULT_DSN)


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


async def create_database() -> PostgresDatabase:
    """Create a uniquely named database on the test server and return its DSN."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL tests pay for the import

    name = f"lockhub_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_admin_dsn(), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PostgresDatabase(dsn=_with_database(_admin_dsn(), name), name=name)


def session_database() -> PostgresDatabase:
    """Create this session's database; no driver or no server skips (fails under CI)."""
    try:
        import asyncpg  # noqa: PLC0415 - see create_database
    except ImportError:
        missing_service("asyncpg is not installed (pip install 'lockhub[postgres]')")
    # Refused or reset connections (OSError), silence (TimeoutError), a server that refuses us
    # (PostgresError) and a link the driver cannot use (InterfaceError) all mean: no server.
    unreachable = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
    try:
        return asyncio.run(create_database())
    except unreachable as exc:
        missing_service(f"no PostgreSQL server reachable ({type(exc).__name__}: {exc})")


async def drop_database(db: PostgresDatabase) -> None:
    """Drop a database made by create_database, disconnecting anyone still on it."""
    import asyncpg  # noqa: PLC0415 - see create_database

    admin = await asyncpg.connect(_admin_dsn(), timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await admin.close()
