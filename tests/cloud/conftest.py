"""Fixtures: a migrated cloud database on each backend, a registered hub, a record builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol.chain import GENESIS_HASH, payload_hash
from cloud_sync.protocol.envelope import Envelope, Signer
from cloud_sync.protocol.keys import public_key_b64
from cloud_sync.protocol.messages import RecordType, build_record
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, migrate
from tests.infra.services import PostgresDatabase, create_database, drop_database

HUB_ID = "hub-0001"
CLOUD_KID = "cloud-2026"
TENANT = "tenant-a"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CLOCK = {"synced": True, "source": "timesyncd"}


class SettableClock:
    """A wall clock that only moves when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@dataclass
class HubChain:
    """Signs records as a hub does: gap-free seqs, each naming the previous payload's hash."""

    signer: Signer
    seq: int = 0
    prev_hash: str = GENESIS_HASH
    made: list[Envelope] = field(default_factory=list)

    def record(self, type_: RecordType, body: Mapping[str, Any], **overrides: Any) -> Envelope:
        """Sign the next record; ``overrides`` may replace seq or prev_hash to forge one."""
        seq = overrides.get("seq", self.seq + 1)
        full = {"clock": CLOCK, "prev_hash": overrides.get("prev_hash", self.prev_hash), **body}
        payload = build_record(type=type_, hub_id=HUB_ID, seq=seq, issued_at=START, body=full)
        self.seq, self.prev_hash = seq, payload_hash(payload)
        envelope = self.signer.sign(payload)
        self.made.append(envelope)
        return envelope

    def events(self, count: int) -> list[Envelope]:
        """``count`` lock events."""
        return [
            self.record(
                "lock.event",
                {"lock_id": "front-door", "event": "locked", "unattributed": False, "details": {}},
            )
            for _ in range(count)
        ]

    def restart(self) -> Envelope:
        """Start a new chain as a hub does after quarantining its store."""
        self.seq, self.prev_hash = 0, GENESIS_HASH
        return self.alert("store.quarantined", "critical")

    def alert(self, kind: str, severity: str = "warning") -> Envelope:
        """A ``hub.alert`` record."""
        body = {"kind": kind, "severity": severity, "message": kind, "details": {}}
        return self.record("hub.alert", body)


@dataclass(frozen=True)
class HubKeys:
    """A hub's private keys, as the hub holds them."""

    signing: Ed25519PrivateKey
    sealing: X25519PrivateKey

    @property
    def signing_b64(self) -> str:
        return public_key_b64(self.signing.public_key())

    @property
    def sealing_b64(self) -> str:
        return public_key_b64(self.sealing.public_key())


@pytest.fixture(scope="session")
def cloud_pg(postgres_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database of this folder's own for the session; each test empties it first."""
    db = asyncio.run(create_database())
    try:
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend; PostgreSQL skips (or fails under CI) without a server."""
    if request.param == "postgresql":
        request.getfixturevalue("cloud_pg")
    return str(request.param)


@pytest.fixture
async def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend.

    PostgreSQL: dropping and recreating the schema takes milliseconds where a new database
    per test takes a quarter of a second.
    """
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    import asyncpg  # noqa: PLC0415 - only PostgreSQL runs need it

    db: PostgresDatabase = request.getfixturevalue("cloud_pg")
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
async def store(empty_url: str, clock: SettableClock) -> AsyncIterator[CloudStore]:
    await migrate(empty_url)
    async with await CloudStore.open(empty_url, now=clock) as opened:
        yield opened


@pytest.fixture
def hub_keys() -> HubKeys:
    return HubKeys(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())


@pytest.fixture
def cloud_signer() -> Signer:
    return Signer(CLOUD_KID, Ed25519PrivateKey.generate())


@pytest.fixture
async def service(
    store: CloudStore, cloud_signer: Signer, hub_keys: HubKeys, clock: SettableClock
) -> CloudService:
    svc = CloudService(store, cloud_signer, now=clock)
    await svc.add_hub(HUB_ID, hub_keys.signing_b64, hub_keys.sealing_b64, tenants=[TENANT])
    return svc


@pytest.fixture
def chain(hub_keys: HubKeys) -> HubChain:
    return HubChain(Signer(HUB_ID, hub_keys.signing))
