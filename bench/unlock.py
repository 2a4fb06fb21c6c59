"""Unlock latency through the local API, and the gateway's RSS, with 100,000 windows cached.

Windows are built as rows (each with its own code, hashed with the hub's key) and written
through ``Store.append_records`` in batches: signing and applying 100,000 ``window.upsert``
commands would measure the command intake, not the cache. The hub then loads them as it does
at every start, in ``start_hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from cloud_sync.protocol.ids import new_ulid
from gateway.access.codes import code_hash
from gateway.access.lockout import LockoutPolicy, Lockouts
from gateway.api import ApiParts, build_app
from gateway.config import GatewayConfig, load_gateway_config
from gateway.daemon import STORE_FILE, Hub, build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from gateway.identity import init_identity
from gateway.store import Courier, Store, WindowRow
from gateway.store.state import window_batch

from .harness import Context, Row, scenario

WINDOWS = 100_000
QUICK_WINDOWS = 1_000
LOCKS = tuple(f"door-{n}" for n in range(1, 9))
# Big batches keep the load short (one commit each) without one huge transaction.
LOAD_BATCH = 5_000
# Sequential requests per measured path, stopped early after the budget (bounds `make bench`).
REQUESTS = 2_000
QUICK_REQUESTS = 50
REQUEST_BUDGET_SECONDS = 20.0
# Requests to each server before measuring: connection set up, code paths warm.
WARMUP = 100
QUICK_WARMUP = 5
SEED = 20_260_101
HUB_ID = "hub-bench"
CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "state"

[mqtt]
url = "mqtt://127.0.0.1:1"

[access]
grace_seconds = 120
untrusted_clock_policy = "deny"
{locks}
"""
LOCK_SECTION = '\n[[locks]]\nid = "{lock_id}"\ndriver = "sim"\n'
# Wrong codes from one loopback address would be locked out after 5; with this policy the
# denied path keeps costing what an attacker's first guesses cost (a record, two counters).
NEVER_LOCKED_OUT = LockoutPolicy(threshold=10**9, lock_threshold=10**9)
STATUS_LINE = "VmRSS:"
PEAK_LINE = "VmHWM:"
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
CHILD = "from bench.unlock import rss_child; rss_child()"


@dataclass(frozen=True, slots=True)
class Credential:
    """A code that opens ``lock_id`` now."""

    lock_id: str
    code: str


def write_config(workdir: Path) -> GatewayConfig:
    """A hub config with the sim locks, and the hub's keys, under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "gateway.toml"
    locks = "".join(LOCK_SECTION.format(lock_id=lock_id) for lock_id in LOCKS)
    path.write_text(CONFIG.format(hub_id=HUB_ID, locks=locks), encoding="utf-8")
    config = load_gateway_config(path, env={})
    init_identity(config.hub.state_dir)
    return config


def _times(rng: random.Random, index: int, now: datetime) -> tuple[datetime, datetime, str]:
    """Start, end and state: 10% expired yesterday, 20% later today or tomorrow, 70% open now."""
    kind = index % 10
    if kind == 0:
        starts = now - timedelta(hours=rng.uniform(24, 48))
        return starts, starts + timedelta(hours=4), "expired"
    if kind in (1, 2):
        starts = now + timedelta(hours=rng.uniform(1, 48))
        return starts, starts + timedelta(hours=4), "scheduled"
    starts = now - timedelta(hours=rng.uniform(0, 4))
    return starts, now + timedelta(hours=rng.uniform(1, 8)), "active"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Windows loaded, requests timed per path and warm-up requests per server."""

    windows: int
    requests: int
    warmup: int

    @classmethod
    def of(cls, context: Context) -> Sizes:
        """Full sizes, the quick ones, or ``LOCKHUB_BENCH_UNLOCK_WINDOWS`` and the like."""
        return cls(
            context.size("UNLOCK_WINDOWS", WINDOWS, QUICK_WINDOWS),
            context.size("UNLOCK_REQUESTS", REQUESTS, QUICK_REQUESTS),
            context.size("UNLOCK_WARMUP", WARMUP, QUICK_WARMUP),
        )


def build_windows(
    secret: bytes, now: datetime, count: int
) -> tuple[list[WindowRow], list[Credential]]:
    """``count`` hub-enforced windows spread over LOCKS, each with a distinct 8-digit code."""
    rng = random.Random(SEED)
    codes = rng.sample(range(10_000_000, 100_000_000), count)
    rows: list[WindowRow] = []
    usable: list[Credential] = []
    for index, number in enumerate(codes):
        lock_id, code = LOCKS[index % len(LOCKS)], str(number)
        starts, ends, state = _times(rng, index, now)
        rows.append(
            WindowRow(
                window_id=new_ulid(),
                tenant_id="acme",
                task_id=f"task-{index:06d}",
                lock_id=lock_id,
                starts_at=starts,
                ends_at=ends,
                version=1,
                max_uses=None,  # stays usable however often the bench opens it
                uses=0,
                enforcement="hub",
                state=state,
                code_hash=code_hash(secret, lock_id, code),
                code_sealed=None,
                courier=Courier(f"courier-{index % 1000}", "Courier"),
                carrier_job_id=None,
                updated_at=now,
            )
        )
        if state == "active":
            usable.append(Credential(lock_id, code))
    return rows, usable


async def populate(store: Store, rows: list[WindowRow]) -> float:
    """Write ``rows`` in LOAD_BATCH batches (one transaction each); return windows/s."""
    start = time.perf_counter()
    for first in range(0, len(rows), LOAD_BATCH):
        await store.append_records([], windows=rows[first : first + LOAD_BATCH])
    return len(rows) / (time.perf_counter() - start)


def raw_write_rate(db: Path, copy: Path, rows: list[WindowRow]) -> float:
    """sqlite3 executemany of ready-made tuples into a copy of the windows table; rows/s."""
    with closing(sqlite3.connect(db)) as source:
        schema = [
            r[0]
            for r in source.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", ("windows",)
            )
        ]
    sql, values = window_batch(rows)
    with closing(sqlite3.connect(copy, isolation_level="IMMEDIATE")) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for statement in schema:
            conn.execute(statement)
        start = time.perf_counter()
        for first in range(0, len(values), LOAD_BATCH):
            conn.executemany(sql, values[first : first + LOAD_BATCH])
            conn.commit()
        return len(values) / (time.perf_counter() - start)


def raw_read_rate(db: Path) -> float:
    """sqlite3 fetchall of every windows row, as tuples (no parsing); rows/s."""
    with closing(sqlite3.connect(db)) as conn:
        start = time.perf_counter()
        rows = conn.execute("SELECT * FROM windows ORDER BY starts_at, window_id").fetchall()
        return len(rows) / (time.perf_counter() - start)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port; return its runner and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def raw_unlock(_: web.Request) -> web.Response:
    """The baseline handler: a small JSON answer, nothing else."""
    return web.json_response({"result": "unlocked"})


def raw_app() -> web.Application:
    """The baseline server: the unlock route answered at once."""
    app = web.Application()
    app.router.add_post("/v1/locks/{lock_id}/unlock", raw_unlock)
    return app


Send = Callable[[int], Awaitable[float]]


def sender(session: aiohttp.ClientSession, base: str, calls: list[Credential], want: int) -> Send:
    """POST the n-th credential's code; return seconds taken; raise on an unexpected status."""

    async def send(n: int) -> float:
        credential = calls[n % len(calls)]
        url = f"{base}/v1/locks/{credential.lock_id}/unlock"
        start = time.perf_counter()
        async with session.post(url, json={"code": credential.code}) as response:
            await response.read()
        elapsed = time.perf_counter() - start
        if response.status != want:
            raise RuntimeError(f"unlock answered {response.status}, expected {want}")
        return elapsed

    return send


async def latencies(send: Send, count: int) -> list[float]:
    """Up to ``count`` sequential requests (fewer if the budget runs out); seconds each."""
    samples: list[float] = []
    deadline = time.perf_counter() + REQUEST_BUDGET_SECONDS
    while len(samples) < count and time.perf_counter() < deadline:
        samples.append(await send(len(samples)))
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


@dataclass(slots=True)
class Measured:
    """What one run of the latency scenario measured (rates per second, latencies in s)."""

    write_rate: float = 0.0
    raw_write: float = 0.0
    start_rate: float = 0.0
    raw_read: float = 0.0
    baseline: list[float] = field(default_factory=list)
    granted: list[float] = field(default_factory=list)
    denied: list[float] = field(default_factory=list)


async def load_hub(workdir: Path, measured: Measured, count: int) -> tuple[Hub, list[Credential]]:
    """A hub with ``count`` windows written to its store and loaded by ``start_hub``."""
    config = write_config(workdir)
    hub = await build_hub(config, sync_check=lambda: True)
    try:
        keys, _ = init_identity(config.hub.state_dir)
        rows, usable = build_windows(keys.code_secret, hub.clock.now(), count)
        measured.write_rate = await populate(hub.store, rows)
        db = config.hub.state_dir / STORE_FILE
        measured.raw_write = raw_write_rate(db, workdir / "raw-windows.db", rows)
        measured.raw_read = raw_read_rate(db)
        del rows
        hub.engine.lockouts = Lockouts(hub.store, NEVER_LOCKED_OUT, hub.clock.now)
        start = time.perf_counter()
        await start_hub(hub)
        measured.start_rate = len(hub.engine.cache) / (time.perf_counter() - start)
    except BaseException:
        # An open store keeps aiosqlite's thread, and so the process, alive.
        await stop_hub(hub)
        raise
    return hub, usable


def api_parts(hub: Hub) -> ApiParts:
    """The local API's parts as ``gateway.daemon.serve`` builds them (no admin token)."""
    return ApiParts(
        engine=hub.engine,
        intake=hub.intake,
        metrics=hub_metrics(hub.engine),
        admin_token=None,
        ready=hub.ready,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def measure_latency(workdir: Path, sizes: Sizes) -> Measured:
    """Load the hub, serve both APIs, time the baseline, granted and denied requests."""
    measured = Measured()
    hub, usable = await load_hub(workdir, measured, sizes.windows)
    rng = random.Random(SEED + 1)
    granted = rng.sample(usable, sizes.requests)
    # Nine digits: well formed, but every window's code has eight.
    wrong = [Credential(c.lock_id, c.code + "0") for c in granted]
    runner = asyncio.create_task(hub.engine.run())
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(stop_hub, hub)
        stack.push_async_callback(_cancel, runner)
        ours, ours_url = await serve(build_app(api_parts(hub)))
        stack.push_async_callback(ours.cleanup)
        raw, raw_url = await serve(raw_app())
        stack.push_async_callback(raw.cleanup)
        async with aiohttp.ClientSession() as session:
            send_raw = sender(session, raw_url, granted, 200)
            send_granted = sender(session, ours_url, granted, 200)
            await latencies(send_raw, sizes.warmup)
            await latencies(send_granted, sizes.warmup)
            measured.baseline = await latencies(send_raw, sizes.requests)
            measured.granted = await latencies(send_granted, sizes.requests)
            denied = sender(session, ours_url, wrong, 403)
            measured.denied = await latencies(denied, sizes.requests)
    return measured


@scenario("unlock")
def unlock(context: Context) -> Iterator[Row]:
    """Unlock p50/p99 through the local API with WINDOWS cached vs a raw aiohttp round trip."""
    sizes = Sizes.of(context)
    measured = asyncio.run(measure_latency(context.workdir / "unlock", sizes))
    n = f"{sizes.windows:,} windows"
    yield Row(
        f"windows into the store, batches of {LOAD_BATCH:,} vs sqlite3 executemany",
        measured.write_rate,
        measured.raw_write,
        "windows/s",
    )
    yield Row(
        f"start_hub loading {n} vs sqlite3 fetchall",
        measured.start_rate,
        measured.raw_read,
        "windows/s",
    )
    base50, base99 = percentiles(measured.baseline)
    for path, samples in (("granted", measured.granted), ("denied", measured.denied)):
        p50, p99 = percentiles(samples)
        label = f"unlock {path} via API, {n}, n={len(samples):,} vs raw aiohttp"
        yield Row(f"{label} (n={len(measured.baseline):,}), p50", p50, base50, "ms", 2)
        yield Row(f"{label}, p99", p99, base99, "ms", 2)


# RSS: measured in a fresh interpreter so that the bench's own data does not count.


def status_kib(line: str) -> int:
    """A ``/proc/self/status`` value in KiB (``VmRSS:``, ``VmHWM:``)."""
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for entry in status:
            if entry.startswith(line):
                return int(entry.split()[1])
    raise RuntimeError(f"no {line} in /proc/self/status")


async def _child(config: GatewayConfig) -> dict[str, int]:
    hub = await build_hub(config, sync_check=lambda: True)
    runner = web.AppRunner(build_app(api_parts(hub)), access_log=None)
    await runner.setup()
    gc.collect()
    before = status_kib(STATUS_LINE)
    await start_hub(hub)
    gc.collect()
    after, peak = status_kib(STATUS_LINE), status_kib(PEAK_LINE)
    windows = len(hub.engine.cache)
    await runner.cleanup()
    await stop_hub(hub)
    return {"before": before, "after": after, "peak": peak, "windows": windows}


def rss_child() -> None:
    """Entry point of the child: build the hub of ``argv[1]``, print RSS before/after start."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    config = load_gateway_config(Path(sys.argv[1]), env={})
    print(json.dumps(asyncio.run(_child(config))))


async def _prepare_rss(workdir: Path, count: int) -> Path:
    config = write_config(workdir)
    keys, _ = init_identity(config.hub.state_dir)
    hub = await build_hub(config, sync_check=lambda: True)
    try:
        rows, _ = build_windows(keys.code_secret, hub.clock.now(), count)
        await populate(hub.store, rows)
    finally:
        await stop_hub(hub)
    return workdir / "gateway.toml"


@scenario("rss")
def rss(context: Context) -> Iterator[Row]:
    """Gateway RSS with WINDOWS windows loaded vs the same process before loading them."""
    count = Sizes.of(context).windows
    config_path = asyncio.run(_prepare_rss(context.workdir / "rss", count))
    child = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", CHILD, str(config_path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    result = json.loads(child.stdout)
    before, after, peak = (result[k] * 1024 / MIB for k in ("before", "after", "peak"))
    per_window = (result["after"] - result["before"]) * 1024 / result["windows"]
    n = f"{result['windows']:,} windows"
    yield Row(
        f"gateway RSS, {n} loaded vs 0 ({per_window:,.0f} bytes/window)", after, before, "MiB", 1
    )
    yield Row(f"gateway peak RSS (VmHWM) after loading {n} vs RSS at 0", peak, before, "MiB", 1)
