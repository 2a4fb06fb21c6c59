"""sd_notify(3) spoken on the notify socket directly, and the hub's watchdog rule.

No libsystemd: the protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to
the ``AF_UNIX`` socket that ``$NOTIFY_SOCKET`` names (a path, or an abstract name written with
a leading ``@``). Outside systemd the variable is unset and every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from .clock import FLOOR_KV_KEY
from .store import Store, StoreError
from .sync.client import CONNECT_TIMEOUT_SECONDS
from .sync.link import HubLink

log = structlog.get_logger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
# `systemctl status` shows STATUS= on one line; a longer text only gets cut there.
MAX_STATUS_CHARS = 200
# Ping twice per WatchdogSec (sd_watchdog_enabled(3) advises "half the time"): one late or
# withheld ping is not yet a restart.
PINGS_PER_PERIOD = 2
_USEC = 1_000_000
# The watchdog's store probe (one indexed read) must answer within this long; a cheap SD card
# stalling on fsync takes a few seconds, a wedged store never answers.
STORE_PROBE_SECONDS = 5.0
# While disconnected, the link dials at least every backoff cap plus a connect timeout; twice
# that with no sign of it dialing means the link task is stuck (not that the broker is away).
LINK_STALL_FACTOR = 2.0


def socket_address(value: str) -> str:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value (``@name`` is abstract)."""
    return "\0" + value[1:] if value.startswith("@") else value


def one_line(text: str) -> str:
    """``text`` fit for a STATUS= field: one line, bounded."""
    return " ".join(text.split())[:MAX_STATUS_CHARS]


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings, or None when systemd runs no watchdog for us."""
    usec = env.get(WATCHDOG_USEC_ENV, "")
    owner = env.get(WATCHDOG_PID_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != (pid or os.getpid())):
        return None  # the watchdog is some other process's (we were started by a wrapper)
    return int(usec) / _USEC / PINGS_PER_PERIOD


class Notifier:
    """Sends state changes to systemd's notify socket; a no-op without one."""

    def __init__(self, address: str | None) -> None:
        self._address = socket_address(address) if address else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier for ``$NOTIFY_SOCKET`` (disabled when unset)."""
        return cls(env.get(NOTIFY_SOCKET_ENV) or None)

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given."""
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` as one datagram; False (logged) when there is no socket or it fails."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop on a full socket: a lost ping is retried anyway.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("notify.failed", error=str(exc), fields=[f.split("=")[0] for f in fields])
            return False
        return True

    def ready(self, status: str) -> bool:
        """The service is up (systemd's start job completes)."""
        return self.send("READY=1", "STATUS=" + one_line(status))

    def reloading(self) -> bool:
        """A reload began; ``ready`` ends it."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str) -> bool:
        """Shutdown began (systemd stops the watchdog and starts TimeoutStopSec)."""
        return self.send("STOPPING=1", "STATUS=" + one_line(status))

    def watchdog(self) -> bool:
        """The process is healthy: reset systemd's watchdog timer."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line summary for `systemctl status`."""
        return self.send("STATUS=" + one_line(text))


# The watchdog rule.


class Vitals:
    """The watchdog's rule: the event loop turns, the store answers, the MQTT link is alive.

    The link is alive when connected, or while it keeps cycling through its retries: a hub
    whose broker is unreachable for days is healthy (it opens doors offline) and must not be
    restarted for that. Only a link that stopped trying (a stuck task) counts against it. The
    event loop needs no probe: a blocked loop sends no ping at all.
    """

    def __init__(
        self, store: Store, link: HubLink | None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._link = link
        self._monotonic = monotonic
        self._mark = self._link_mark()
        self._since = monotonic()

    def _link_mark(self) -> tuple[bool, int, int]:
        link = self._link
        if link is None:
            return (False, 0, 0)
        return (link.connected, link.connects, link.backoff.attempt)

    def link_problem(self) -> str | None:
        """Why the link counts as stuck, or None."""
        link = self._link
        mark, now = self._link_mark(), self._monotonic()
        if mark != self._mark:
            self._mark, self._since = mark, now
        if link is None or link.connected:
            return None
        limit = LINK_STALL_FACTOR * (link.settings.backoff_cap + CONNECT_TIMEOUT_SECONDS)
        idle = now - self._since
        return None if idle <= limit else f"mqtt link made no attempt for {idle:.0f} s"

    async def store_problem(self, limit: float) -> str | None:
        """Why the store counts as stuck, or None (one indexed read must answer in ``limit``)."""
        try:
            async with asyncio.timeout(limit):
                await self._store.kv_get(FLOOR_KV_KEY)
        except TimeoutError:
            return f"store did not answer in {limit:g} s"
        except StoreError as exc:
            return f"store failed: {exc}"
        return None

    async def problem(self, limit: float) -> str | None:
        """The first reason to withhold the watchdog ping, or None when healthy."""
        return await self.store_problem(limit) or self.link_problem()


async def keep_watchdog(
    notifier: Notifier, interval: float, vitals: Vitals, summary: Callable[[], str]
) -> None:
    """Ping the watchdog every ``interval`` while ``vitals`` find no problem; keep STATUS= set."""
    shown = ""
    while True:
        problem = await vitals.problem(min(STORE_PROBE_SECONDS, interval / 2))
        if problem is None:
            notifier.watchdog()
        else:
            log.warning("watchdog.withheld", reason=problem)
        text = summary() if problem is None else f"unhealthy: {problem}"
        if text != shown:
            notifier.status(text)
            shown = text
        await asyncio.sleep(interval)
