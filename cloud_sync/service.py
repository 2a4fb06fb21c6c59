"""The cloud's domain layer: hubs, API keys, windows, tasks, resyncs, acks (no MQTT, no HTTP).

Codes: the plaintext is returned once and never stored. The cloud keeps an HMAC-SHA256 of it
under a per-deployment pepper (an 8-digit code falls to a plain hash in a second) and the code
sealed to the hub's X25519 key, which only that hub can open, so a resync can resend it.
API keys: ``lhk_<prefix>_<secret>`` with 256 random bits of secret; the store keeps SHA-256 of
the secret (no salt or stretching is needed for a full-entropy secret) and compares in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from cloud_sync.errors import InvalidRequestError, NotFoundError, UnknownHubError
from cloud_sync.protocol.commands import MAX_WINDOWS_PER_PAGE, CommandType, WindowUpsertBody
from cloud_sync.protocol.control import MAX_ACK_RANGES
from cloud_sync.protocol.envelope import Envelope, Signer, encode_batch
from cloud_sync.protocol.errors import MalformedError
from cloud_sync.protocol.fields import dump
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.keys import load_ed25519_public, load_x25519_public
from cloud_sync.protocol.messages import (
    HubHello,
    ack_payload,
    command_payload,
    window_set_digest,
)
from cloud_sync.protocol.sealing import seal_code
from cloud_sync.protocol.topics import DEFAULT_PREFIX, acks_topic, check_hub_id, commands_topic
from cloud_sync.store import (
    ApiKeyRow,
    CloudStore,
    HubRow,
    TaskView,
    WindowRow,
    WindowView,
    utc_now,
)

log = structlog.get_logger(__name__)

# Long enough for a hub that is briefly offline to still apply a command; a hub offline for
# longer gets windows.sync on reconnect. Well inside the protocol's 31-day limit.
COMMAND_LIFETIME = timedelta(hours=24)
# 10^8 codes: a hub locks a source out after a handful of wrong tries (see docs/access.md).
CODE_DIGITS = 8
# A code a lock's own keypad must hold (enforcement "lock" or "both") has to suit every keypad
# we drive: Nuki takes exactly 6 digits from 1-9, not starting with "12"; Yale and Schlage
# take 4-8 digits. Six digits from 1-9 (531,441 codes, less the "12" prefix) fit them all.
KEYPAD_CODE_DIGITS = 6
KEYPAD_DIGITS = "123456789"
API_KEY_SCHEME = "lhk"
# 48 bits of prefix find the row; 256 bits of secret make guessing hopeless.
API_KEY_PREFIX_BYTES = 6
API_KEY_SECRET_BYTES = 32
PEPPER_INFO = b"lockhub/v1 code-hash pepper"
REVOKE_REASON = "revoked"


class Outgoing(NamedTuple):
    """One MQTT message to publish (QoS 1): a topic and a batch of signed envelopes."""

    topic: str
    payload: bytes


def _pepper(signing: Signer) -> bytes:
    seed = signing.key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(hashes.SHA256(), 32, salt=None, info=PEPPER_INFO).derive(seed)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _invalid(error: ValidationError | MalformedError) -> InvalidRequestError:
    if isinstance(error, MalformedError):
        return InvalidRequestError("request", str(error))
    first = error.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "window"
    return InvalidRequestError(where, first["msg"])


def new_code(enforcement: str) -> str:
    """A fresh code from the CSPRNG: 8 digits, or a keypad-safe 6 for lock-side windows."""
    if enforcement == "hub":
        return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    while True:
        code = "".join(secrets.choice(KEYPAD_DIGITS) for _ in range(KEYPAD_CODE_DIGITS))
        if not code.startswith("12"):  # Nuki reserves it (the keypad's admin prefix)
            return code


class CloudService:
    """What the MQTT ingest and the REST API do, over a ``CloudStore``."""

    def __init__(
        self,
        store: CloudStore,
        signing: Signer,
        prefix: str = DEFAULT_PREFIX,
        *,
        now: Callable[[], datetime] = utc_now,
        pepper: bytes | None = None,
    ) -> None:
        self.store = store
        self._signing = signing
        self._prefix = prefix
        self._now = now
        # Derived from the signing key unless given: a per-deployment secret with no new file.
        self._pepper = pepper if pepper is not None else _pepper(signing)

    async def add_hub(
        self,
        hub_id: str,
        signing_key_b64: str,
        sealing_key_b64: str,
        tenants: Sequence[str] = (),
    ) -> HubRow:
        """Register a hub by its public keys and grant it to ``tenants``; InvalidRequestError
        for a bad id or key."""
        try:
            check_hub_id(hub_id)
            load_ed25519_public(signing_key_b64)
            load_x25519_public(sealing_key_b64)
        except MalformedError as error:
            raise _invalid(error) from error
        hub = await self.store.add_hub(hub_id, signing_key_b64, sealing_key_b64)
        for tenant_id in tenants:
            await self.store.grant_hub(hub_id, tenant_id)
        log.info("hub.added", hub_id=hub_id, tenants=list(tenants))
        return hub

    async def create_api_key(self, tenant_id: str) -> str:
        """Create an API key for ``tenant_id``; the plaintext is returned here only."""
        prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
        secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
        row = ApiKeyRow(new_ulid(), tenant_id, prefix, _hash_secret(secret), self._now(), None)
        await self.store.add_api_key(row)
        log.info("api_key.created", tenant_id=tenant_id, prefix=prefix)
        return f"{API_KEY_SCHEME}_{prefix}_{secret}"

    async def authenticate(self, key: str) -> str | None:
        """The tenant of a valid, unrevoked API key; None for anything else."""
        scheme, _, rest = key.partition("_")
        prefix, _, secret = rest.partition("_")
        if scheme != API_KEY_SCHEME or not prefix or not secret:
            return None
        row = await self.store.api_key(prefix)
        if row is None:
            return None
        if not hmac.compare_digest(row.key_hash, _hash_secret(secret)):
            return None
        return row.tenant_id if row.revoked_at is None else None

    async def revoke_api_key(self, prefix: str) -> bool:
        """Revoke the API key with ``prefix``; False if unknown or revoked already."""
        return await self.store.revoke_api_key(prefix)

    async def create_window(
        self,
        tenant_id: str,
        task_id: str,
        *,
        hub_id: str,
        lock_id: str,
        starts_at: datetime,
        ends_at: datetime,
        max_uses: int | None = None,
        enforcement: str = "hub",
        courier: Mapping[str, str] | None = None,
        carrier_job_id: str | None = None,
    ) -> tuple[WindowView, str, list[Outgoing]]:
        """Create a window with a fresh code; return it, the code (only here) and the command."""
        if not await self.store.hub_serves(hub_id, tenant_id):
            # The same answer as for a hub that does not exist: a tenant learns nothing about
            # other tenants' hubs.
            raise UnknownHubError(hub_id)
        hub = await self.store.get_hub(hub_id)
        now, window_id = self._now(), new_ulid()
        code = new_code(enforcement)
        sealed = seal_code(code, window_id, load_x25519_public(hub.sealing_key))
        row = WindowRow(
            window_id, tenant_id, task_id, hub_id, lock_id, starts_at, ends_at, 1, max_uses,
            enforcement, self._code_hash(window_id, code), sealed,
            None if courier is None else dict(courier), carrier_job_id,
            "active", None, None, None, now, now,
        )  # fmt: skip
        body = _upsert_body(row)
        if row.ends_at <= now:
            raise InvalidRequestError("ends_at", "the window has already ended")
        await self.store.insert_window(row)
        commands = await self._commands(hub_id, "window.upsert", [body])
        log.info("window.created", window_id=window_id, hub_id=hub_id, task_id=task_id)
        return WindowView.of(row), code, commands

    def _code_hash(self, window_id: str, code: str) -> str:
        message = f"{window_id}|{code}".encode("ascii")
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    async def revoke_window(
        self, tenant_id: str, window_id: str
    ) -> tuple[WindowView, list[Outgoing]]:
        """Revoke a window (a new version; again is harmless); return it and the command."""
        row = await self.store.revoke_window(tenant_id, window_id)
        if row is None:
            raise NotFoundError("window", window_id)
        body = {"window_id": window_id, "version": row.version, "reason": REVOKE_REASON}
        commands = await self._commands(row.hub_id, "window.revoke", [body])
        log.info("window.revoked", window_id=window_id, version=row.version)
        return WindowView.of(row), commands

    async def complete_task(self, tenant_id: str, task_id: str) -> tuple[TaskView, list[Outgoing]]:
        """Complete a task: revoke its windows; one ``task.complete`` per hub holding them."""
        done = await self.store.complete_task(tenant_id, task_id)
        if done is None:
            raise NotFoundError("task", task_id)
        _, revoked = done
        commands: list[Outgoing] = []
        for hub_id in sorted({window.hub_id for window in revoked}):
            commands += await self._commands(hub_id, "task.complete", [{"task_id": task_id}])
        log.info("task.completed", task_id=task_id, windows=len(revoked))
        return await self.get_task(tenant_id, task_id), commands

    async def get_window(self, tenant_id: str, window_id: str) -> WindowView:
        """The tenant's window; NotFoundError if there is none."""
        row = await self.store.get_window(tenant_id, window_id)
        if row is None:
            raise NotFoundError("window", window_id)
        return WindowView.of(row)

    async def list_windows(self, tenant_id: str, task_id: str | None = None) -> list[WindowView]:
        """The tenant's windows (of one task)."""
        return [WindowView.of(row) for row in await self.store.list_windows(tenant_id, task_id)]

    async def get_task(self, tenant_id: str, task_id: str) -> TaskView:
        """The tenant's task with its PoD; NotFoundError if there is none."""
        task = await self.store.get_task(tenant_id, task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        pod = None if task.pod_id is None else await self.store.get_pod(task.pod_id)
        windows = await self.store.list_windows(tenant_id, task_id)
        ids = [window.window_id for window in windows]
        return TaskView(tenant_id, task_id, task.status, task.delivered_at, pod, ids)

    async def resync(self, hub_id: str, hello: HubHello | None = None) -> list[Outgoing]:
        """The hub's desired windows as ``windows.sync`` pages; none if its digest matches."""
        rows = await self.store.hub_windows(hub_id)
        digest = window_set_digest((row.window_id, row.version) for row in rows)
        if hello is not None and hello.body.window_set_digest == digest:
            return []
        bodies = [_upsert_body(row) for row in rows]
        pages = [
            bodies[start : start + MAX_WINDOWS_PER_PAGE]
            for start in range(0, len(bodies), MAX_WINDOWS_PER_PAGE)
        ] or [[]]
        seqs = await self.store.allocate_command_seqs(self._signing.kid, len(pages))
        # The first seq names the set: seqs only grow, so a newer set has a higher version.
        syncs = [
            {"set_version": seqs[0], "page": number, "pages": len(pages), "windows": page}
            for number, page in enumerate(pages, start=1)
        ]
        log.info("hub.resync", hub_id=hub_id, windows=len(rows), pages=len(pages))
        return [
            Outgoing(commands_topic(self._prefix, hub_id), encode_batch([envelope]))
            for envelope in self._sign_all(hub_id, "windows.sync", syncs, seqs)
        ]

    def ack_command(self, hub_id: str, ranges: Iterable[tuple[int, int]]) -> list[Outgoing]:
        """The signed ``records.ack`` for stored ranges (one message; none if empty)."""
        ranges = list(ranges)
        if not ranges:
            return []
        now = self._now()
        envelopes = [
            self._signing.sign(
                ack_payload(hub_id=hub_id, issued_at=now, acked=ranges[i : i + MAX_ACK_RANGES])
            )
            for i in range(0, len(ranges), MAX_ACK_RANGES)
        ]
        return [Outgoing(acks_topic(self._prefix, hub_id), encode_batch(envelopes))]

    async def _commands(
        self, hub_id: str, type_: CommandType, bodies: Sequence[Mapping[str, Any]]
    ) -> list[Outgoing]:
        seqs = await self.store.allocate_command_seqs(self._signing.kid, len(bodies))
        envelopes = self._sign_all(hub_id, type_, bodies, seqs)
        return [Outgoing(commands_topic(self._prefix, hub_id), encode_batch(envelopes))]

    def _sign_all(
        self, hub_id: str, type_: CommandType, bodies: Sequence[Mapping[str, Any]], seqs: range
    ) -> list[Envelope]:
        now = self._now()
        expires = now + COMMAND_LIFETIME
        return [
            self._signing.sign(
                command_payload(
                    type=type_, hub_id=hub_id, seq=seq, issued_at=now, expires_at=expires, body=body
                )
            )
            for seq, body in zip(seqs, bodies, strict=True)
        ]


def _upsert_body(row: WindowRow) -> dict[str, Any]:
    """The ``window.upsert`` body of a stored window; InvalidRequestError if it is not valid."""
    names = WindowUpsertBody.model_fields
    try:
        body = WindowUpsertBody.model_validate({name: getattr(row, name) for name in names})
    except ValidationError as error:
        raise _invalid(error) from error
    return dump(body)
