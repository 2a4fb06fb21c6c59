"""The outbox side of the link: the pump that publishes unacked records, and the depth watch."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from cloud_sync.protocol.envelope import MAX_BATCH_BYTES, encode_batch

from ..access import records
from ..store import Store, StoredRecord, StoreError
from .settings import SyncSettings

log = structlog.get_logger(__name__)

Publish = Callable[[bytes], Awaitable[None]]
# "[" + "]" around the envelopes, and a comma between two.
_ARRAY_BYTES = 2
_COMMA_BYTES = 1
# An alert re-arms once the depth fell this far below its threshold, so a depth hovering at
# the line does not raise one alert per check.
REARM_FRACTION = 0.9


def split_batches(
    items: Sequence[StoredRecord], *, batch_size: int, max_batches: int
) -> list[list[StoredRecord]]:
    """Cut records (in order) into at most ``max_batches`` messages within the batch limits."""
    batches: list[list[StoredRecord]] = []
    current: list[StoredRecord] = []
    size = _ARRAY_BYTES
    for record in items:
        extra = len(encode_batch([record.envelope])) - _ARRAY_BYTES + _COMMA_BYTES
        if current and (len(current) >= batch_size or size + extra > MAX_BATCH_BYTES):
            batches.append(current)
            if len(batches) == max_batches:
                return batches
            current, size = [], _ARRAY_BYTES
        current.append(record)
        size += extra
    if current:
        batches.append(current)
    return batches


class OutboxPump:
    """Publishes unacked records in seq order, a bounded window at a time, resending on stalls."""

    def __init__(
        self,
        store: Store,
        settings: SyncSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._settings = settings
        self._monotonic = monotonic
        self._changed = asyncio.Event()
        self._progress = monotonic()
        self._highest_acked = 0
        # The oldest outstanding seq seen behind a later ack, and since when.
        self._hole: tuple[int, float] | None = None
        self.published_records = 0
        self.resends = 0

    def acked(self, last_seq: int = 0) -> None:
        """A verified ack (up to ``last_seq``) freed part of the window: look again."""
        self._highest_acked = max(self._highest_acked, last_seq)
        self._progress = self._monotonic()
        self._changed.set()

    def _hole_deadline(self, oldest: int) -> float | None:
        """When to resend because ``oldest`` sits behind a later ack; None if it does not."""
        if self._highest_acked <= oldest:
            self._hole = None
            return None
        if self._hole is None or self._hole[0] != oldest:
            self._hole = (oldest, self._monotonic())
        return self._hole[1] + self._settings.hole_resend_after

    async def run(self, publish: Publish) -> None:
        """Publish from the oldest unacked record on; returns never, raises what publish raises."""
        settings, cursor = self._settings, 0
        self._progress = self._monotonic()
        while True:
            self._changed.clear()
            head = (await self._store.chain_head()).seq
            pending = await self._store.unacked(settings.window + settings.batch_size)
            out = [r for r in pending if r.seq <= cursor]
            hole_at = self._hole_deadline(out[0].seq) if out else None
            now = self._monotonic()
            stalled = out and now - self._progress >= settings.resend_after
            if stalled or (hole_at is not None and now >= hole_at):
                log.warning("sync.resend", from_seq=out[0].seq, outstanding=len(out))
                cursor, self._progress, self._hole = 0, self._monotonic(), None
                self.resends += 1
                continue
            room = max(0, settings.window - len(out))
            fresh = [r for r in pending if r.seq > cursor][:room]
            if fresh:
                if not out:
                    self._progress = self._monotonic()
                cursor = await self._publish(publish, fresh)
                continue
            resend_at = self._progress + settings.resend_after if out else None
            if hole_at is not None and resend_at is not None:
                resend_at = min(resend_at, hole_at)
            await self._wait(head, resend_at)

    async def _publish(self, publish: Publish, fresh: list[StoredRecord]) -> int:
        batches = split_batches(
            fresh,
            batch_size=self._settings.batch_size,
            max_batches=self._settings.inflight_batches,
        )
        # gather starts the publishes in list order and each hands its message to paho before
        # its first await, so the broker receives the batches in seq order.
        await asyncio.gather(*(publish(encode_batch([r.envelope for r in b])) for b in batches))
        sent = sum(len(b) for b in batches)
        self.published_records += sent
        log.debug("sync.published", records=sent, last_seq=batches[-1][-1].seq)
        return batches[-1][-1].seq

    async def _wait(self, head: int, resend_at: float | None) -> None:
        """Until an ack, a new record, or the resend deadline."""
        while not self._changed.is_set():
            if resend_at is not None and self._monotonic() >= resend_at:
                return
            if (await self._store.chain_head()).seq != head:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll):
                    await self._changed.wait()


class OutboxWatch:
    """Watches the outbox depth against its bound (alerting once per crossing) and purges."""

    def __init__(
        self,
        store: Store,
        settings: SyncSettings,
        clock: Callable[[], records.Clock],
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._now = now
        self.depth = 0
        self._raised: dict[str, bool] = {"outbox_high": False, "outbox_full": False}

    @property
    def alert(self) -> str | None:
        """The outbox alert in force (raised, not yet re-armed): the worst kind, or None."""
        for kind in ("outbox_full", "outbox_high"):
            if self._raised[kind]:
                return kind
        return None

    async def run(self) -> None:
        """Check the depth every ``outbox_check`` seconds and purge every ``purge_interval``."""
        purge_due = 0.0
        elapsed = 0.0
        while True:
            try:
                await self.check()
                if elapsed >= purge_due:
                    await self.purge()
                    purge_due = elapsed + self._settings.purge_interval
            except StoreError as exc:
                # The store's trouble is reported where it happens; the watch tries again.
                log.error("sync.outbox_check_failed", error=str(exc))
            await asyncio.sleep(self._settings.outbox_check)
            elapsed += self._settings.outbox_check

    async def check(self) -> int:
        """Read the depth, alert on a crossing, and return the depth."""
        settings = self._settings
        self.depth = depth = await self._store.outbox_depth()
        await self._crossing("outbox_high", "warning", settings.alert_depth)
        await self._crossing("outbox_full", "critical", settings.max_outbox)
        if depth >= settings.max_outbox:
            # DESIGN.md: never silently drop a PoD. Recording goes on past the bound (disk
            # permitting); the bound is where an operator must act.
            log.error("sync.outbox_full", depth=depth, bound=settings.max_outbox)
        return depth

    async def _crossing(self, kind: str, severity: str, threshold: int) -> None:
        if self.depth < threshold * REARM_FRACTION:
            self._raised[kind] = False
        if self.depth < threshold or self._raised[kind]:
            return
        self._raised[kind] = True
        log.warning("sync.outbox_alert", kind=kind, depth=self.depth, threshold=threshold)
        details: records.Details = {
            "depth": self.depth,
            "threshold": threshold,
            "bound": self._settings.max_outbox,
        }
        message = f"{self.depth} records wait for the cloud's ack (threshold {threshold})"
        await self._store.append_records(
            [records.alert(kind, severity, message, self._clock(), details)]
        )

    async def purge(self) -> int:
        """Delete acked records older than the retention; unacked ones are never touched."""
        purged = await self._store.purge_acked(self._now() - self._settings.retention)
        if purged:
            log.info("sync.purged", records=purged)
        return purged
