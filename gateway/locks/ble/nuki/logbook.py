"""Which of the lock's log entries the hub has read: a mark kept across restarts."""

from __future__ import annotations

from ...credentials import CredentialStore
from .keyturner import LogEntry
from .session import NukiSession

# Not a secret, but it must survive restarts so keypad unlocks made while the hub was down
# are still read; the credential store is the hub's per-lock persistent place.
LOG_MARK_KIND = "nuki_ble_log"
# Log entries per request: the lock sends one indication train per entry, 20 fit in ~2 s.
LOG_BATCH = 20
# A hub that was down for days catches up on at most this many batches of its log.
LOG_MAX_BATCHES = 5


class LogMark:
    """The index of the newest log entry read, kept in the credential store."""

    def __init__(self, store: CredentialStore, lock_id: str) -> None:
        self._store = store
        self._lock_id = lock_id
        self.index: int | None = None

    def load(self) -> None:
        """Read the mark back (None: the log was never read)."""
        mark = self._store.load(self._lock_id, LOG_MARK_KIND)
        self.index = int(mark["index"]) if mark is not None else None

    async def new_entries(self, session: NukiSession, pin: int) -> list[LogEntry]:
        """The entries after the mark (the first call only sets it); moves the mark."""
        batch = await session.log_entries(pin, count=LOG_BATCH)
        newest = max((e.index for e in batch), default=0)
        if self.index is None:  # first run: start from now, do not replay history
            self._save(newest)
            return []
        mark, found = self.index, [e for e in batch if e.index > self.index]
        for _ in range(LOG_MAX_BATCHES - 1):
            oldest = min((e.index for e in batch), default=0)
            if len(batch) < LOG_BATCH or oldest <= mark + 1:
                break
            batch = await session.log_entries(pin, start=oldest - 1, count=LOG_BATCH)
            found += [e for e in batch if e.index > mark]
        if newest > mark:
            self._save(newest)
        return found

    def _save(self, index: int) -> None:
        self.index = index
        self._store.save(self._lock_id, LOG_MARK_KIND, {"index": index})
