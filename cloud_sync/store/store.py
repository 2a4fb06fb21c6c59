"""``CloudStore``: the cloud's database behind one async facade."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import UnknownHubError
from cloud_sync.protocol.keys import load_ed25519_public

from . import ingest, tenancy
from . import windows as windows_
from .accept import accept_chain
from .engine import Database, make_engine
from .migrate import check_at_head
from .rows import (
    AlertRow,
    ApiKeyRow,
    ChainAccepted,
    ChainState,
    HubRow,
    IngestResult,
    PodRow,
    StoredRecord,
    TaskRow,
    WindowRow,
)
from .schema import alerts, hub_chains, records

if TYPE_CHECKING:
    from cloud_sync.metrics import ChainSummary

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


class CloudStore:
    """Hubs, their record chains, API keys, tasks, windows, PoDs, alerts and command seqs."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db = db
        self._now = now
        # Hub keys never change once registered (add_hub refuses other keys): safe to cache.
        self._signing_keys: dict[str, Ed25519PublicKey] = {}

    async def chain_summary(self) -> ChainSummary:
        """Hubs, broken chains and records waiting past a gap (for /metrics)."""
        from cloud_sync.metrics import read_chain_summary  # noqa: PLC0415 - metrics import us

        async with self._db.read() as conn:
            return await read_chain_summary(conn)

    @property
    def database(self) -> Database:
        """The database itself, for parts with tables of their own (carriers, billing)."""
        return self._db

    @classmethod
    async def open(cls, database_url: str, *, now: Callable[[], datetime] = utc_now) -> Self:
        """Connect to a migrated database; SchemaError says to run ``lockhub cloud migrate``."""
        db = Database(make_engine(database_url))
        try:
            await check_at_head(db)
        except BaseException:
            await db.dispose()
            raise
        log.info("cloud_store.opened", dialect=db.dialect)
        return cls(db, now)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._db.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Hubs.

    async def add_hub(self, hub_id: str, signing_key: str, sealing_key: str) -> HubRow:
        """Register a hub by its base64url public keys; ConflictError if held with others."""
        hub = HubRow(hub_id, signing_key, sealing_key, self._now())
        return await self._db.write(lambda conn: tenancy.add_hub(conn, self.dialect, hub))

    async def grant_hub(self, hub_id: str, tenant_id: str) -> None:
        """Let ``tenant_id`` create windows on ``hub_id``; UnknownHubError if no such hub."""
        now = self._now()
        await self._db.write(
            lambda conn: tenancy.grant_hub(conn, self.dialect, hub_id, tenant_id, now)
        )

    async def hub_serves(self, hub_id: str, tenant_id: str) -> bool:
        """True when ``hub_id`` was granted to ``tenant_id``."""
        async with self._db.read() as conn:
            return await tenancy.hub_serves(conn, hub_id, tenant_id)

    async def get_hub(self, hub_id: str) -> HubRow:
        """The registered hub; UnknownHubError if there is none."""
        async with self._db.read() as conn:
            return await tenancy.get_hub(conn, hub_id)

    async def list_hubs(self) -> list[HubRow]:
        """Every registered hub."""
        async with self._db.read() as conn:
            return await tenancy.list_hubs(conn)

    async def chain_state(self, hub_id: str) -> ChainState:
        """Where the hub's verified chain stands; UnknownHubError if unregistered."""
        async with self._db.read() as conn:
            query = sa.select(hub_chains).where(hub_chains.c.hub_id == hub_id)
            row = (await conn.execute(query)).first()
        if row is None:
            raise UnknownHubError(hub_id)
        return ChainState(**row._mapping)

    async def accept_chain(self, hub_id: str, from_seq: int) -> ChainAccepted:
        """Re-anchor the hub's broken chain at ``from_seq`` and chain what it held back.

        ConflictError if the chain is not broken, InvalidRequestError for a ``from_seq``
        before the break or with nothing to anchor to, UnknownHubError for no such hub.
        """
        now = self._now()
        return await self._db.write(
            lambda conn: accept_chain(conn, self.dialect, hub_id, from_seq, now)
        )

    # Records.

    async def ingest(self, hub_id: str, envelopes: Sequence[object]) -> IngestResult:
        """Verify, store once, chain and apply a batch from ``hub_id``'s ``up/records``.

        Ack ``result.acked`` only after this returns: those records are committed.
        """
        key = await self._signing_key(hub_id)
        items, rejected = ingest.verify_batch(hub_id, key, envelopes)
        now = self._now()

        async def work(conn: AsyncConnection) -> IngestResult:
            return await ingest.store_batch(conn, self.dialect, hub_id, items, now)

        result = await self._db.write(work)
        result.rejected = rejected
        log.info(
            "records.ingested",
            hub_id=hub_id,
            stored=result.stored,
            duplicates=result.duplicates,
            rejected=len(rejected),
            conflicts=len(result.conflicts),
            chained=result.chained,
            epoch=result.epoch,
        )
        return result

    async def _signing_key(self, hub_id: str) -> Ed25519PublicKey:
        key = self._signing_keys.get(hub_id)
        if key is None:
            key = load_ed25519_public((await self.get_hub(hub_id)).signing_key)
            self._signing_keys[hub_id] = key
        return key

    async def records(self, hub_id: str, epoch: int | None = None) -> list[StoredRecord]:
        """The hub's stored records (of one epoch), in epoch and seq order."""
        query = sa.select(
            records.c.hub_id, records.c.epoch, records.c.seq, records.c.record_id,
            records.c.type, records.c.payload, records.c.chained, records.c.received_at,
        ).where(records.c.hub_id == hub_id)  # fmt: skip
        if epoch is not None:
            query = query.where(records.c.epoch == epoch)
        async with self._db.read() as conn:
            rows = await conn.execute(query.order_by(records.c.epoch, records.c.seq))
            return [StoredRecord(**row._mapping) for row in rows]

    async def alerts(self, hub_id: str | None = None) -> list[AlertRow]:
        """Stored alerts (of one hub), oldest first."""
        query = sa.select(alerts).order_by(alerts.c.id)
        if hub_id is not None:
            query = query.where(alerts.c.hub_id == hub_id)
        async with self._db.read() as conn:
            return [AlertRow(**row._mapping) for row in await conn.execute(query)]

    # Command seqs and API keys.

    async def allocate_command_seqs(self, kid: str, count: int = 1) -> range:
        """Reserve ``count`` consecutive command seqs of signing key ``kid``."""
        return await self._db.write(
            lambda conn: tenancy.allocate_seqs(conn, self.dialect, kid, count)
        )

    async def add_api_key(self, key: ApiKeyRow) -> None:
        """Store a new API key row (hash only)."""
        await self._db.write(lambda conn: tenancy.add_api_key(conn, key))

    async def api_key(self, prefix: str) -> ApiKeyRow | None:
        """The API key with ``prefix``."""
        async with self._db.read() as conn:
            return await tenancy.api_key_by_prefix(conn, prefix)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKeyRow]:
        """A tenant's API keys."""
        async with self._db.read() as conn:
            return await tenancy.list_api_keys(conn, tenant_id)

    async def revoke_api_key(self, prefix: str) -> bool:
        """Revoke the key with ``prefix``; False if unknown or revoked already."""
        now = self._now()
        return await self._db.write(lambda conn: tenancy.revoke_api_key(conn, prefix, now))

    # Windows, tasks, PoDs.

    async def insert_window(self, window: WindowRow) -> None:
        """Store a new window (and its task, pending, if new)."""
        await self._db.write(lambda conn: windows_.insert_window(conn, self.dialect, window))

    async def get_window(self, tenant_id: str, window_id: str) -> WindowRow | None:
        """The tenant's window, or None."""
        async with self._db.read() as conn:
            return await windows_.get_window(conn, tenant_id, window_id)

    async def list_windows(self, tenant_id: str, task_id: str | None = None) -> list[WindowRow]:
        """The tenant's windows (of one task)."""
        async with self._db.read() as conn:
            return await windows_.list_windows(conn, tenant_id, task_id)

    async def hub_windows(self, hub_id: str) -> list[WindowRow]:
        """The windows the hub should hold now (active, not ended)."""
        async with self._db.read() as conn:
            return await windows_.hub_windows(conn, hub_id, self._now())

    async def revoke_window(self, tenant_id: str, window_id: str) -> WindowRow | None:
        """Revoke the window at a new version (idempotent); None if unknown."""
        now = self._now()

        async def work(conn: AsyncConnection) -> WindowRow | None:
            found = await windows_.get_window(conn, tenant_id, window_id, lock=True)
            if found is None:
                return None
            return (await windows_.revoke_windows(conn, [found], now))[0]

        return await self._db.write(work)

    async def complete_task(
        self, tenant_id: str, task_id: str
    ) -> tuple[TaskRow, list[WindowRow]] | None:
        """Complete the task and revoke its windows; None if the task is unknown."""
        now = self._now()
        return await self._db.write(
            lambda conn: windows_.complete_task(conn, tenant_id, task_id, now)
        )

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRow | None:
        """The tenant's task, or None."""
        async with self._db.read() as conn:
            return await windows_.get_task(conn, tenant_id, task_id)

    async def get_pod(self, pod_id: str) -> PodRow | None:
        """A PoD by id, or None."""
        async with self._db.read() as conn:
            return await windows_.get_pod(conn, pod_id)
