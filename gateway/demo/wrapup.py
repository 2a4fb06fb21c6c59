"""The demo's last steps: the day's report, a clean shutdown, and no secret in any file."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path

from .scene import TENANT, Demo, expect


async def step_report(demo: Demo) -> str:
    """Every task of the day as the cloud's API shows it, written to tasks.json."""
    tasks = [await demo.task(task_id) for task_id in demo.windows]
    delivered = sum(task["status"] == "delivered" for task in tasks)
    expect(delivered == len(tasks), f"only {delivered} of {len(tasks)} tasks are delivered")
    methods = sorted({task["pod"]["method"] for task in tasks})
    path = demo.workdir / "tasks.json"
    path.write_text(json.dumps({"tenant": TENANT, "tasks": tasks}, indent=2) + "\n")
    demo.files.append(("the day's tasks (cloud API)", path))
    return f"{delivered}/{len(tasks)} tasks delivered, PoD methods {', '.join(methods)}"


def _query(path: Path, sql: str) -> int | str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        value: int | str = db.execute(sql).fetchone()[0]
        return value


async def step_shutdown(demo: Demo) -> str:
    """Hub, cloud and broker stop as their daemons do; both databases check out afterwards."""
    _, hub = demo.running()
    # The hub stops first: it drains its API and flushes its outbox while still connected.
    await demo.close()
    hub_db, cloud_db = hub.store.path, demo.workdir / "cloud" / "cloud.db"
    checks = {path.name: _query(path, "PRAGMA integrity_check") for path in (hub_db, cloud_db)}
    expect(all(v == "ok" for v in checks.values()), f"integrity_check: {checks}")
    head = _query(hub_db, "SELECT coalesce(max(seq), 0) FROM records")
    unacked = _query(hub_db, "SELECT count(*) FROM records WHERE acked_at IS NULL")
    stored = _query(cloud_db, "SELECT count(*) FROM records")
    expect(unacked == 0, f"{unacked} records were still waiting for the cloud at shutdown")
    expect(stored == head, f"the hub wrote {head} records, the cloud holds {stored}")
    return f"outbox flushed: all {head} records in the cloud; integrity_check ok on " + (
        " and ".join(checks)
    )


def _found(pattern: re.Pattern[bytes], paths: list[Path]) -> list[str]:
    return [str(path) for path in paths if pattern.search(path.read_bytes())]


async def step_no_secrets(demo: Demo) -> str:
    """No code and no API key in any file the demo left: logs, databases, configs."""
    paths = sorted(p for p in demo.workdir.rglob("*") if p.is_file())
    # A code as a number of its own: ``.123456`` is a timestamp's microseconds, not a code.
    secrets = [re.escape(code.encode()) for code in demo.codes]
    pattern = re.compile(rb"(?<![\d.])(?:" + b"|".join(secrets) + rb")(?!\d)")
    leaks = _found(pattern, paths)
    expect(not leaks, f"a code is in {', '.join(leaks)}")
    leaks = _found(re.compile(re.escape(demo.api_key.encode())), paths)
    expect(not leaks, f"the API key is in {', '.join(leaks)}")
    return f"{len(demo.codes)} codes and the API key searched in {len(paths)} files: none found"
