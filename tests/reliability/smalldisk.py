"""A real small filesystem for disk-full tests: a tmpfs of a few MiB, filled and freed.

Mounting needs root (CAP_SYS_ADMIN); without it the tests skip, and fail under CI, like any
missing service. A tmpfs answers a write past its size with ENOSPC, which SQLite reports as
SQLITE_FULL: the same path a full SD card takes.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.infra.services import missing_service

# Filler writes: big pieces to get near the end fast, then pages to reach it exactly.
_PIECES = (1024 * 1024, 4096)


@dataclass
class SmallDisk:
    """A mounted tmpfs and the filler file that takes its free space."""

    path: Path

    @property
    def filler(self) -> Path:
        """The file that holds the space taken by ``fill``."""
        return self.path / "filler"

    def free_bytes(self) -> int:
        """Bytes left on the filesystem."""
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int = 0) -> int:
        """Write the filler until the disk is full, then give back ``leave`` bytes; return
        the bytes left free."""
        with self.filler.open("ab", buffering=0) as out:
            for piece in _PIECES:
                block = bytes(piece)
                while True:
                    try:
                        out.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        if leave:
            size = self.filler.stat().st_size
            os.truncate(self.filler, max(0, size - leave))
        return self.free_bytes()

    def free(self) -> int:
        """Delete the filler; return the bytes free afterwards."""
        self.filler.unlink(missing_ok=True)
        return self.free_bytes()


@contextmanager
def small_disk(where: Path, size_mib: int) -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size_mib`` MiB at ``where`` for the duration of the block."""
    where.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(where)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        missing_service("no mount command to make a small tmpfs")
    if done.returncode != 0:
        missing_service(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield SmallDisk(where)
    finally:
        # Lazy: a process the test left behind cannot keep the mount (and its RAM) alive.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)
