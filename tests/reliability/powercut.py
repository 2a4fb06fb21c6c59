"""Simulated power cuts: keep only what a process synced to disk (see powercut.c).

``PowerCut.arm`` takes the watched directory as it is (no process under test is running,
so it is all durable) and empties the shadow directory; the process then runs with ``env()`` in its
environment, and every sync it makes leaves a snapshot. ``PowerCut.cut``, once the process
is dead, rebuilds the directory as a disk would come back after the power went out: the
files as armed, less those whose deletion was made durable (the directory synced after the
unlink), overlaid with the last synced snapshot of each, and nothing else.

What this does not model (docs/reliability.md, "Power loss"): writes reordered or partly
persisted inside the disk's cache (here an unsynced write is lost whole, a synced one kept
whole), torn sectors, a device that acknowledges a flush it did not do, directory entries
(a new file is assumed to exist once its content was synced), and renames.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.stores import integrity
from tests.infra.services import missing_service

SOURCE = Path(__file__).with_name("powercut.c")
# The shim's tombstone for a deletion made durable by a sync of the directory.
DELETED = ".deleted."


def build_shim(directory: Path) -> Path:
    """Compile powercut.c into ``directory``; skip (fail under CI) without a C compiler."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        missing_service("no C compiler to build the power-cut shim (apt-get install gcc)")
    library = directory / "powercut.so"
    argv = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(SOURCE)]
    done = subprocess.run([*argv, "-ldl"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return library


def _regular_files(directory: Path) -> list[Path]:
    return [entry for entry in directory.iterdir() if entry.is_file()]


@dataclass
class PowerCut:
    """One watched directory, its synced snapshots and the state it was armed with."""

    library: Path
    watch: Path
    work: Path
    cuts: int = 0
    restored: list[str] = field(default_factory=list)

    @property
    def shadow(self) -> Path:
        """Where the shim leaves each file's last synced content."""
        return self.work / "shadow"

    @property
    def baseline(self) -> Path:
        """The watched directory's files as they were when armed."""
        return self.work / "baseline"

    def env(self) -> dict[str, str]:
        """The environment that loads the shim into a process."""
        return {
            "LD_PRELOAD": str(self.library),
            "LOCKHUB_POWERCUT_WATCH": str(self.watch.resolve()),
            "LOCKHUB_POWERCUT_SHADOW": str(self.shadow.resolve()),
        }

    def arm(self) -> None:
        """Take the directory's current files as durable and forget earlier snapshots."""
        for directory in (self.shadow, self.baseline):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        for source in _regular_files(self.watch):
            shutil.copy2(source, self.baseline / source.name)

    def cut(self) -> list[str]:
        """Rebuild the directory from the armed files and the synced snapshots (the process
        must be dead); return the names of the files that came back. Arm again before the
        next run: whatever a check does to the files in between counts as durable."""
        shadow = {entry.name for entry in _regular_files(self.shadow)}
        deleted = {name[len(DELETED) :] for name in shadow if name.startswith(DELETED)}
        for entry in _regular_files(self.watch):
            entry.unlink()
        for source in _regular_files(self.baseline):
            if source.name not in deleted:
                shutil.copy2(source, self.watch / source.name)
        # Names starting with a dot are the shim's own: tombstones, deletions still pending
        # (not durable, so ignored) and copies a cut interrupted.
        for name in sorted(shadow):
            if not name.startswith("."):
                shutil.copyfile(self.shadow / name, self.watch / name)
        self.cuts += 1
        self.restored = sorted(entry.name for entry in _regular_files(self.watch))
        return self.restored


def hub_pods(db: Path) -> set[str]:
    """pod_ids in the hub's rebuilt database, which must pass integrity_check."""
    assert integrity(db) == "ok"
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT payload FROM records WHERE type = 'pod.recorded'")
        return {json.loads(payload)["body"]["pod_id"] for (payload,) in rows}
    finally:
        conn.close()
