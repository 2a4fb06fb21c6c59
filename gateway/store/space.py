"""Disk space: a reserve file that a full disk gets back, so proof of delivery keeps landing.

While the store is open it holds ``RESERVE_BYTES`` of real blocks in a file beside the
database. The first write that SQLite answers with ``SQLITE_FULL`` deletes that file and is
tried again: the store is then in low-space mode (an alert record says so), where new windows
are refused and everything else, above all PoD, keeps being written while the freed space
lasts. Once the filesystem has room again, the next write claims a new reserve and leaves
the mode. See docs/reliability.md ("Disk full").
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import structlog

from .errors import StoreError, StoreFullError, StoreLowSpaceError

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Callback that appends a hub.alert (kind, severity, message, details); False if it could not.
Alert = Callable[[str, str, str, dict[str, str | int | bool]], Awaitable[bool]]

# 8 MiB: the WAL grows to 1000 pages (4 MiB with 4 KiB pages) before an automatic checkpoint
# lets it start over, and a WAL that was deleted at a clean stop grows back from nothing, so
# up to 4 MiB may go to it; the other 4 MiB hold about 1,700 PoD records (2.4 KiB each with
# their indexes, as tests/reliability/test_disk_full.py measures), days of deliveries at a
# busy site. On a 16 GB SD card it is 0.05 %.
RESERVE_BYTES: Final = 8 * 1024 * 1024
# Beside the database; not a companion suffix, so a quarantine leaves it where it is.
RESERVE_SUFFIX: Final = ".reserve"
# Low-space mode ends once the disk has room for a new reserve and as much again: leaving at
# the first free byte would flip in and out of the mode with every write.
RECOVERY_FACTOR: Final = 2
# Zeros written at a time where the filesystem cannot fallocate.
_CHUNK: Final = 1024 * 1024
# Errors that mean "no room here" rather than a broken disk or a wrong path.
_NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
# posix_fallocate is unsupported on some filesystems; zeros reserve the space there too.
_NO_FALLOCATE: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL})


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``directory``."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def _allocate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in _NO_FALLOCATE:
                raise
            os.lseek(fd, 0, os.SEEK_SET)
            zeros = bytes(_CHUNK)
            for start in range(0, size, _CHUNK):
                os.write(fd, zeros[: min(_CHUNK, size - start)])
    finally:
        os.close(fd)


class SpaceReserve:
    """The reserve file beside the database (``size`` 0 disables it); blocking calls."""

    def __init__(self, db_path: Path, size: int) -> None:
        if size < 0:
            raise ValueError("the reserve size cannot be negative")
        self.path = Path(f"{db_path}{RESERVE_SUFFIX}")
        self.size = size

    def claim(self) -> bool:
        """Hold the reserve; False (and no partial file left) if the disk lacks the room."""
        if self.size == 0:
            return True
        try:
            _allocate(self.path, self.size)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            if exc.errno in _NO_ROOM:
                return False
            raise StoreError(f"cannot create the space reserve {self.path}: {exc}") from exc
        return True

    def release(self) -> int:
        """Delete the reserve; return the bytes that gave back (0 if there was none)."""
        try:
            held = self.path.stat().st_blocks * 512
            self.path.unlink()
        except FileNotFoundError:
            return 0
        return int(held)

    def room_to_recover(self) -> bool:
        """True when the disk has room for a new reserve and as much again."""
        return free_bytes(self.path.parent) >= RECOVERY_FACTOR * self.size


@dataclass(frozen=True, slots=True)
class _Alert:
    kind: str
    severity: str
    message: str
    details: dict[str, str | int | bool]


_FULL_AT_OPEN = _Alert(
    "store.disk_full",
    "critical",
    "no room for the space reserve at start; new windows are refused until disk space returns",
    {"at": "open"},
)
_FULL = _Alert(
    "store.disk_full",
    "critical",
    "the disk is full: the space reserve was released for proof of delivery; new windows "
    "are refused until disk space returns",
    {"at": "write"},
)
_RECOVERED = _Alert(
    "store.space_recovered",
    "info",
    "disk space is back: the space reserve is held again and new windows are accepted",
    {},
)


class SpaceGuard:
    """Runs the store's writes: on a full disk, releases the reserve once and retries.

    Its alerts are written after the write that caused them succeeds, never instead of it:
    a write that raises ``StoreFullError`` has written nothing, not even an alert.
    """

    def __init__(self, reserve: SpaceReserve, alert: Alert) -> None:
        self._reserve = reserve
        self._alert = alert
        self._lock = asyncio.Lock()
        # Bumped at every release and claim: a writer that failed before someone else
        # released the reserve just retries instead of finding nothing left to release.
        self._epoch = 0
        self._pending: list[_Alert] = []
        self.low = False

    async def claim(self) -> None:
        """Hold the reserve (at open); start in low-space mode if the disk has no room."""
        if not await asyncio.to_thread(self._reserve.claim):
            self.low = True
            self._epoch += 1
            log.critical("store.disk_full", at="open", path=str(self._reserve.path))
            self._pending.append(_FULL_AT_OPEN)
            await self._flush()

    async def write(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op``; if the disk is full, release the reserve and run it once more."""
        if self.low:
            await self._recover_if_room()
        epoch = self._epoch
        try:
            result = await op()
        except StoreLowSpaceError:
            raise  # a refusal by policy, not the disk running out
        except StoreFullError:
            if not await self._release(epoch):
                raise
            result = await op()
        if self._pending:
            await self._flush()
        return result

    async def _release(self, epoch: int) -> bool:
        async with self._lock:
            if self._epoch != epoch:
                return True
            freed = await asyncio.to_thread(self._reserve.release)
            if freed == 0:  # spent already (or disabled): nothing left to give
                return False
            self.low = True
            self._epoch += 1
            self._pending.append(_FULL)
        log.critical("store.disk_full", at="write", freed_bytes=freed)
        return True

    async def _recover_if_room(self) -> None:
        async with self._lock:
            if not self.low or not await asyncio.to_thread(self._reserve.room_to_recover):
                return
            if not await asyncio.to_thread(self._reserve.claim):
                return
            self.low = False
            self._epoch += 1
            self._pending.append(_RECOVERED)
        log.warning("store.space_recovered", reserve_bytes=self._reserve.size)

    async def _flush(self) -> None:
        async with self._lock:
            while self._pending:
                alert = self._pending[0]
                details = {**alert.details, "reserve_bytes": self._reserve.size}
                if not await self._alert(alert.kind, alert.severity, alert.message, details):
                    return  # kept for after the next write that succeeds
                self._pending.pop(0)

    async def drop(self) -> None:
        """Give the reserve back at a clean close: a stopped hub holds no disk it does not use."""
        await asyncio.to_thread(self._reserve.release)
