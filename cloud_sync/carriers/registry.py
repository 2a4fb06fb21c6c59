"""Carrier partners per tenant, and the Connector each one is built into.

``PROVIDERS`` maps a provider code to the factory that builds its connector; modules that add
carriers call ``register_provider`` (``"uber_direct"``, or ``"karrio:*"`` for every code that
starts with ``karrio:``). Credentials are sealed before they are stored and opened only to
build a connector; no answer and no log line carries them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import structlog

from cloud_sync.errors import InvalidRequestError, NotFoundError
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store import carriers as q
from cloud_sync.store.carriers import CallbackRow, CarrierStore, PartnerRow

from .breaker import BreakerBoard, BreakerSnapshot
from .connector import CarrierJobRef, Connector, JobStatus
from .credentials import KeyRing, key_id
from .errors import CarrierError, UnknownProviderError
from .resilience import Policy, ResilientConnector
from .tariff import TariffConnector, load_table, parse_table

log = structlog.get_logger(__name__)
PartnerStatus = Literal["active", "disabled"]


@dataclass(frozen=True)
class ProviderContext:
    """What factories may use: the shared HTTP session, the clock, and our own PoD flow.

    ``own_status(tenant, ref)`` answers for carriers that are the site's own couriers (the
    tariff connector): a job is delivered when the hub's PoD marked its task delivered.
    """

    session: aiohttp.ClientSession | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    own_status: Callable[[str, CarrierJobRef], Awaitable[JobStatus | None]] | None = None


@dataclass(frozen=True)
class PartnerConfig:
    """A partner as a factory sees it, credentials opened."""

    partner_id: str
    tenant: str
    provider_code: str
    name: str
    credentials: Mapping[str, str] = dataclasses.field(repr=False)
    settings: Mapping[str, Any]


ProviderFactory = Callable[[PartnerConfig, ProviderContext], Connector]
PROVIDERS: dict[str, ProviderFactory] = {}


def register_provider(code: str, factory: ProviderFactory) -> None:
    """Make ``code`` (or a ``prefix:*`` family) buildable."""
    PROVIDERS[code] = factory


def factory_for(code: str) -> ProviderFactory:
    """The factory of ``code``: exact, else its ``prefix:*`` family; UnknownProviderError."""
    found = PROVIDERS.get(code)
    if found is None and ":" in code:
        found = PROVIDERS.get(code.split(":", 1)[0] + ":*")
    if found is None:
        raise UnknownProviderError(f"no connector for provider {code!r}", provider_code=code)
    return found


def tariff_factory(config: PartnerConfig, context: ProviderContext) -> Connector:
    """``tariff``: settings hold ``table`` (an object) or ``table_path`` (TOML or JSON)."""
    table = config.settings.get("table")
    path = config.settings.get("table_path")
    if isinstance(table, Mapping):
        parsed = parse_table(table)
    elif isinstance(path, str):
        parsed = load_table(Path(path))
    else:
        raise CarrierError("tariff settings need a table object or a table_path")
    own = context.own_status
    if own is None:
        return TariffConnector(parsed, now=context.now)

    async def status(ref: CarrierJobRef) -> JobStatus | None:
        return await own(config.tenant, ref)

    return TariffConnector(parsed, now=context.now, status_source=status)


register_provider("tariff", tariff_factory)


class CarrierRegistry:
    """Partners in the store, their connectors (cached) and breakers."""

    def __init__(
        self,
        store: CarrierStore,
        ring: KeyRing,
        board: BreakerBoard,
        *,
        policy: Policy | None = None,
        context: ProviderContext | None = None,
    ) -> None:
        self.store, self.ring, self.board = store, ring, board
        self.policy = policy or Policy()
        self.context = context or ProviderContext()
        self._built: dict[str, tuple[str, ResilientConnector]] = {}

    def _now(self) -> datetime:
        return self.context.now()

    async def create(
        self,
        tenant: str,
        provider_code: str,
        name: str,
        *,
        credentials: Mapping[str, str],
        settings: Mapping[str, Any],
        status: PartnerStatus = "active",
    ) -> PartnerRow:
        """Store a new partner after checking a connector can be built from it."""
        now, partner_id = self._now(), new_ulid()
        sealed = self.ring.seal(credentials, tenant=tenant, partner_id=partner_id)
        row = PartnerRow(
            partner_id, tenant, provider_code, name, sealed, key_id(sealed), dict(settings),
            status, now, now,
        )  # fmt: skip
        self._check(row)
        await self.store.write(lambda conn: q.insert_partner(conn, row))
        log.info(
            "carrier_partner.created", tenant=tenant, partner_id=partner_id, provider=provider_code
        )
        return row

    async def get(self, tenant: str, partner_id: str) -> PartnerRow:
        """The tenant's partner; NotFoundError if none."""
        async with self.store.read() as conn:
            row = await q.get_partner(conn, tenant, partner_id)
        if row is None:
            raise NotFoundError("carrier partner", partner_id)
        return row

    async def list(self, tenant: str, status: str | None = None) -> list[PartnerRow]:
        """The tenant's partners (of one status)."""
        async with self.store.read() as conn:
            return await q.list_partners(conn, tenant, status)

    async def update(
        self,
        tenant: str,
        partner_id: str,
        *,
        name: str | None = None,
        credentials: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        status: PartnerStatus | None = None,
    ) -> PartnerRow:
        """Change what is given (credentials are replaced whole, re-sealed)."""
        row = await self.get(tenant, partner_id)
        changes: dict[str, Any] = {"updated_at": self._now()}
        if name is not None:
            changes["name"] = name
        if settings is not None:
            changes["settings"] = dict(settings)
        if status is not None:
            changes["status"] = status
        if credentials is not None:
            sealed = self.ring.seal(credentials, tenant=tenant, partner_id=partner_id)
            changes |= {"credentials": sealed, "credentials_kid": key_id(sealed)}
        changed = dataclasses.replace(row, **changes)
        self._check(changed)
        await self.store.write(lambda conn: q.update_partner(conn, changed))
        log.info("carrier_partner.updated", partner_id=partner_id, fields=sorted(changes))
        return changed

    async def delete(self, tenant: str, partner_id: str) -> None:
        """Retire the partner: it stays for its jobs' history, its credentials are erased."""
        row = await self.get(tenant, partner_id)
        gone = dataclasses.replace(
            row, status="deleted", credentials=None, credentials_kid=None, updated_at=self._now()
        )
        await self.store.write(lambda conn: q.update_partner(conn, gone))
        self._built.pop(partner_id, None)
        log.info("carrier_partner.deleted", partner_id=partner_id)

    async def webhook_keys(self, partner_id: str, provider_code: str) -> Sequence[bytes]:
        """The partner's ``webhook_signing_key`` credential(s) for a carrier's webhook; none
        (every signature refused) for an unknown partner or another provider's."""
        async with self.store.read() as conn:
            row = await q.partner_by_id(conn, partner_id)
        if row is None or row.provider_code != provider_code:
            return []
        opened = self._config(row).credentials
        names = ("webhook_signing_key", "webhook_signing_key_previous")
        keys = [opened.get(name, "") for name in names]
        return [key.encode() for key in keys if key]

    async def tenant_of(self, partner_id: str) -> str | None:
        """The tenant of a live partner."""
        async with self.store.read() as conn:
            row = await q.partner_by_id(conn, partner_id)
        return None if row is None else row.tenant_id

    def _config(self, row: PartnerRow) -> PartnerConfig:
        opened = (
            {}
            if row.credentials is None
            else self.ring.open(row.credentials, tenant=row.tenant_id, partner_id=row.partner_id)
        )
        return PartnerConfig(
            row.partner_id, row.tenant_id, row.provider_code, row.name, opened, row.settings
        )

    def _check(self, row: PartnerRow) -> None:
        try:
            factory_for(row.provider_code)(self._config(row), self.context)
        except UnknownProviderError as exc:
            raise InvalidRequestError("provider_code", "no such provider") from exc
        except (CarrierError, ValueError, TypeError) as exc:
            raise InvalidRequestError("settings", str(exc)[:200]) from exc

    def connector(self, row: PartnerRow) -> ResilientConnector:
        """The partner's connector behind retries, its breaker and the audit (cached)."""
        # Another worker may have changed the row: rebuild whenever what it is built from changes.
        version = json.dumps(
            [row.updated_at.isoformat(), row.credentials, row.settings], sort_keys=True
        )
        cached = self._built.get(row.partner_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            inner = factory_for(row.provider_code)(self._config(row), self.context)
        except (ValueError, TypeError, KeyError) as exc:
            # Settings that passed once may fail a newer factory: report it, do not crash.
            raise CarrierError(
                f"cannot build the {row.provider_code} connector: {type(exc).__name__}",
                provider_code=row.provider_code,
            ) from exc
        built = ResilientConnector(
            inner, self.board.get(row.partner_id), audit=self.audit, tenant=row.tenant_id,
            partner_id=row.partner_id, policy=self.policy, now=self.context.now,
        )  # fmt: skip
        self._built[row.partner_id] = (version, built)
        return built

    async def breaker(self, tenant: str, partner_id: str) -> BreakerSnapshot:
        """The partner's breaker state."""
        row = await self.get(tenant, partner_id)
        return self.board.get(row.partner_id).snapshot()

    async def audit(self, row: CallbackRow) -> None:
        """Store one failure for audit."""
        await self.store.write(lambda conn: q.add_callback(conn, row))

    async def rotate(self) -> int:
        """Re-seal every partner's credentials under the active key; how many changed."""

        async def work(conn: Any) -> int:
            changed = 0
            for row in await q.all_sealed(conn):
                assert row.credentials is not None  # noqa: S101 - all_sealed selects these
                resealed = self.ring.reseal(
                    row.credentials, tenant=row.tenant_id, partner_id=row.partner_id
                )
                if resealed is not None:
                    fresh = dataclasses.replace(
                        row, credentials=resealed, credentials_kid=self.ring.active
                    )
                    await q.update_partner(conn, fresh)
                    changed += 1
            return changed

        count = await self.store.write(work)
        log.info("carrier_credentials.rotated", active_key=self.ring.active, resealed=count)
        return count
