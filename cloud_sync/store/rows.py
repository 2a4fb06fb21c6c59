"""Plain data the store takes and returns (no ORM objects, no dicts of columns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Desired = Literal["active", "revoked"]
TaskStatus = Literal["pending", "delivered", "completed"]


@dataclass(frozen=True, slots=True)
class HubRow:
    """A registered hub and its public keys (base64url raw)."""

    hub_id: str
    signing_key: str
    sealing_key: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    """An envelope of a batch that was not stored: its position and why."""

    index: int
    reason: str


@dataclass(slots=True)
class IngestResult:
    """What one ``ingest`` call did; ack ``acked`` only after it returned."""

    hub_id: str
    epoch: int = 0
    acked: list[tuple[int, int]] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    chained: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    # Seqs held by a different record in this epoch: not stored, not acked.
    conflicts: list[int] = field(default_factory=list)
    new_epoch: bool = False
    broken_at: int | None = None
    # Records stored but held back (not chained, effects not applied) by a broken chain; each
    # raised a ``chain_held`` alert.
    held: int = 0


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a hub's verified chain stands."""

    hub_id: str
    epoch: int
    next_seq: int
    last_hash: str
    broken_seq: int | None


@dataclass(frozen=True, slots=True)
class ChainAccepted:
    """What ``accept_chain`` did: where the chain was re-anchored and what it chained."""

    hub_id: str
    epoch: int
    from_seq: int
    # Chained records at or after ``from_seq`` that the hub has since rewritten, moved to
    # epoch ``superseded_epoch`` (negative) with their effects standing; 0 and None if none.
    superseded: int
    superseded_epoch: int | None
    # Held-back records chained (and their effects applied) by the re-anchor.
    chained: int
    next_seq: int
    # Set when a record after ``from_seq`` breaks the chain again.
    broken_at: int | None


@dataclass(frozen=True, slots=True)
class WindowRow:
    """An access window as the cloud holds it, with the sync state the hub reported."""

    window_id: str
    tenant_id: str
    task_id: str
    hub_id: str
    lock_id: str
    starts_at: datetime
    ends_at: datetime
    version: int
    max_uses: int | None
    enforcement: str
    code_hash: str | None
    code_sealed: str | None
    courier: dict[str, Any] | None
    carrier_job_id: str | None
    desired: str
    hub_status: str | None
    hub_status_at: datetime | None
    hub_version: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PodRow:
    """A proof of delivery as ingested from a hub's chained ``pod.recorded`` record."""

    pod_id: str
    tenant_id: str
    task_id: str
    window_id: str
    hub_id: str
    seq: int
    lock_id: str
    method: str
    unlocked_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task's delivery state and the PoD that delivered it."""

    tenant_id: str
    task_id: str
    status: str
    delivered_at: datetime | None
    pod_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRow:
    """Something an operator should look at."""

    id: int
    hub_id: str
    kind: str
    severity: str
    message: str
    details: dict[str, Any] | None
    record_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """A stored API key: only the hash of its secret."""

    key_id: str
    tenant_id: str
    prefix: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as stored: the exact signed payload and whether it is chained."""

    hub_id: str
    epoch: int
    seq: int
    record_id: str
    type: str
    payload: bytes
    chained: bool
    received_at: datetime


@dataclass(frozen=True, slots=True)
class WindowView:
    """A window as the API shows it (no code hash, no sealed code) with the hub's report."""

    window_id: str
    tenant_id: str
    task_id: str
    hub_id: str
    lock_id: str
    starts_at: datetime
    ends_at: datetime
    version: int
    max_uses: int | None
    enforcement: str
    courier: dict[str, Any] | None
    carrier_job_id: str | None
    desired: str
    hub_status: str | None
    hub_status_at: datetime | None
    hub_version: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WindowRow) -> WindowView:
        """The view of a stored window (without its code hash and sealed code)."""
        fields = {name: getattr(row, name) for name in cls.__slots__}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task's delivery status, its PoD and its windows."""

    tenant_id: str
    task_id: str
    status: str
    delivered_at: datetime | None
    pod: PodRow | None
    window_ids: list[str]
