"""The link's tunables: limits from ``[sync]`` plus timings that tests may shorten."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# 100 records of ~1 KiB make a ~100 KiB message: well under MAX_BATCH_BYTES, and few enough
# that a lost message costs little to resend.
DEFAULT_BATCH_SIZE = 100
# Batches published and not yet acked by the cloud (and so PUBACKs pending at once): enough
# to fill a slow site link while the cloud's ack is on its way; it bounds aiomqtt's
# pending-call bookkeeping (DESIGN.md section 2) and how much one resend repeats.
MAX_INFLIGHT_BATCHES = 8
# About 1 KiB a record: a million records is ~1 GiB of SQLite, months of a busy site offline.
DEFAULT_MAX_OUTBOX = 1_000_000
# Warn the operator while a fifth of the bound is still left.
DEFAULT_ALERT_FRACTION = 0.8
# Acked records stay this long for local audit (admin API), then are purged.
DEFAULT_RETENTION = timedelta(days=7)
# Full-jitter backoff: first retries come fast (a broker restart takes about a second), and a
# fleet of hubs never waits more than a minute nor reconnects in lockstep.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
# A connection that lasted this long was good: the next failure starts the backoff afresh.
STABLE_CONNECTION_SECONDS = 30.0
# No ack for this long while records are out: resend from the oldest unacked (an ack or a
# batch was lost, e.g. the cloud crashed between storing and acking). The cloud is idempotent.
RESEND_AFTER_SECONDS = 60.0
# A later record was acked but the oldest outstanding one was not: its message was lost
# between the broker and the cloud (a cloud crash before its commit, a broker killed with the
# message queued). Resend from it after this long; two workers may ack out of order for a
# moment, so not at once.
HOLE_RESEND_SECONDS = 5.0
# How often the pump looks at the chain head for new records: an in-memory read, no I/O.
POLL_SECONDS = 0.2
# Depth check and alert; a count over a big outbox costs tens of milliseconds.
OUTBOX_CHECK_SECONDS = 30.0
# Acked records older than the retention are purged this often.
PURGE_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How the link batches, bounds the outbox and retries."""

    batch_size: int = DEFAULT_BATCH_SIZE
    max_outbox: int = DEFAULT_MAX_OUTBOX
    alert_fraction: float = DEFAULT_ALERT_FRACTION
    retention: timedelta = DEFAULT_RETENTION
    inflight_batches: int = MAX_INFLIGHT_BATCHES
    backoff_base: float = BACKOFF_BASE_SECONDS
    backoff_cap: float = BACKOFF_CAP_SECONDS
    stable_after: float = STABLE_CONNECTION_SECONDS
    resend_after: float = RESEND_AFTER_SECONDS
    hole_resend_after: float = HOLE_RESEND_SECONDS
    poll: float = POLL_SECONDS
    outbox_check: float = OUTBOX_CHECK_SECONDS
    purge_interval: float = PURGE_INTERVAL_SECONDS

    @property
    def window(self) -> int:
        """Records that may be out (published, not acked) at once."""
        return self.batch_size * self.inflight_batches

    @property
    def alert_depth(self) -> int:
        """The outbox depth at which ``outbox_high`` is raised."""
        return max(1, int(self.max_outbox * self.alert_fraction))
