"""Commands (cloud -> hub): body models, payload models and the command builder."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field, TypeAdapter, model_validator

from .b64 import b64url_decode
from .errors import MalformedError
from .fields import Ident, Seq, Text, Timestamp, Version, WireModel
from .ids import new_ulid
from .payload import Payload, encode, frame, validate

# A command that has waited longer than this is stale: the hub resyncs with windows.sync.
MAX_COMMAND_LIFETIME = timedelta(days=31)
# HPKE X25519 enc (32) + ChaCha20-Poly1305 tag (16) around a 6..128 character code.
SEALED_CODE_MIN_BYTES = 32 + 6 + 16
SEALED_CODE_MAX_BYTES = 32 + 128 + 16
SEALED_CODE_MAX_CHARS = (SEALED_CODE_MAX_BYTES * 4 + 2) // 3
# Pages keep one windows.sync message well under the batch limit (about 1 KiB per window).
MAX_WINDOWS_PER_PAGE = 100
# Ten thousand pages of a hundred windows is far beyond any site.
MAX_PAGES = 10_000


def _check_sealed(value: str) -> str:
    try:
        raw = b64url_decode(value)
    except MalformedError as exc:
        raise ValueError("must be canonical unpadded base64url") from exc
    if not SEALED_CODE_MIN_BYTES <= len(raw) <= SEALED_CODE_MAX_BYTES:
        raise ValueError("sealed code has an impossible length")
    return value


# The length bound runs first, so a huge string is refused before it is decoded.
SealedCode = Annotated[str, Field(max_length=SEALED_CODE_MAX_CHARS), AfterValidator(_check_sealed)]


class Courier(WireModel):
    """The courier a window is meant for, for display and audit."""

    id: Ident
    name: Text


class WindowUpsertBody(WireModel):
    """Create or change one access window (applied only if ``version`` is higher)."""

    window_id: Ident
    tenant_id: Ident
    task_id: Ident
    lock_id: Ident
    starts_at: Timestamp
    ends_at: Timestamp
    version: Version
    max_uses: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    enforcement: Literal["hub", "lock", "both"]
    code_sealed: SealedCode
    courier: Courier | None = None
    carrier_job_id: Ident | None = None

    @model_validator(mode="after")
    def _check(self) -> WindowUpsertBody:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class WindowRevokeBody(WireModel):
    """Revoke one window at ``version`` (or later versions already held are kept)."""

    window_id: Ident
    version: Version
    reason: Text


class WindowsSyncBody(WireModel):
    """One page of the complete desired window set ``set_version``."""

    set_version: Version
    page: Annotated[int, Field(ge=1, le=MAX_PAGES)]
    pages: Annotated[int, Field(ge=1, le=MAX_PAGES)]
    windows: Annotated[list[WindowUpsertBody], Field(max_length=MAX_WINDOWS_PER_PAGE)]

    @model_validator(mode="after")
    def _check(self) -> WindowsSyncBody:
        if self.page > self.pages:
            raise ValueError("page must not exceed pages")
        return self


class TaskCompleteBody(WireModel):
    """The task is done: revoke every window of it."""

    task_id: Ident


class CommandPayload(Payload):
    """Members common to commands: a seq from the cloud's database and an expiry."""

    seq: Seq
    expires_at: Timestamp

    @model_validator(mode="after")
    def _check_lifetime(self) -> CommandPayload:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        if self.expires_at - self.issued_at > MAX_COMMAND_LIFETIME:
            raise ValueError("expires_at is too far after issued_at")
        return self


class WindowUpsert(CommandPayload):
    """``window.upsert`` command."""

    type: Literal["window.upsert"]
    body: WindowUpsertBody


class WindowRevoke(CommandPayload):
    """``window.revoke`` command."""

    type: Literal["window.revoke"]
    body: WindowRevokeBody


class WindowsSync(CommandPayload):
    """``windows.sync`` command."""

    type: Literal["windows.sync"]
    body: WindowsSyncBody


class TaskComplete(CommandPayload):
    """``task.complete`` command."""

    type: Literal["task.complete"]
    body: TaskCompleteBody


Command = Annotated[
    WindowUpsert | WindowRevoke | WindowsSync | TaskComplete, Field(discriminator="type")
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
CommandType = Literal["window.upsert", "window.revoke", "windows.sync", "task.complete"]
COMMAND_TYPES: frozenset[str] = frozenset(get_args(CommandType))


def command_payload(
    *,
    type: CommandType,  # noqa: A002 - the wire field is called "type"
    hub_id: str,
    seq: int,
    issued_at: datetime,
    expires_at: datetime,
    body: WireModel | Mapping[str, Any],
    command_id: str | None = None,
) -> bytes:
    """Build and validate a command's payload bytes; raise MalformedError on a bad field."""
    members = frame(
        type_=type,
        hub_id=hub_id,
        seq=seq,
        issued_at=issued_at,
        body=body,
        message_id=command_id or new_ulid(),
    )
    members["expires_at"] = expires_at
    return encode(validate(COMMAND_ADAPTER, members))
