"""The daemons of a deployment as subprocesses, and a courier who keeps unlocking."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

# SIGTERM: the hub says goodbye (2 s at most) and closes its store; the cloud closes its pool.
STOP_SECONDS = 15.0
# One unlock through the local API: a sim lock answers in milliseconds.
UNLOCK_TIMEOUT = aiohttp.ClientTimeout(total=10)
POLL_SECONDS = 0.05


def lockhub(*args: str, cwd: Path) -> str:
    """Run the real ``lockhub`` CLI; return stdout, fail the test with stderr on an error."""
    argv = [sys.executable, "-m", "gateway.cli", *args]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"lockhub {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Daemon:
    """One daemon subprocess, restartable, logging every run to the same file."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start the daemon (it must not be running)."""
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {self.name} start {self.starts}\n".encode())
            log.flush()
            # Its own session: a signal for the test runner's group never reaches it.
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a power cut of that process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_SECONDS)
            self.kills += 1
        self.process = None

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code (SIGKILL if it hangs, and fail)."""
        assert self.process is not None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"{self.name} ignored SIGTERM for {STOP_SECONDS} s:\n{self.tail()}")
        return process.returncode

    def tail(self, lines: int = 40) -> str:
        """The end of the daemon's log, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail with the log's tail if the process died on its own."""
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")


@dataclass
class Unlocker:
    """A courier who keeps unlocking through the hub's local API, counting what came back."""

    url: str
    code: str
    pods: list[str] = field(default_factory=list)
    interrupted: int = 0  # a request cut off after it reached the hub: it may have unlocked
    refused: int = 0  # no connection: the hub was down, nothing happened
    other: Counter[int] = field(default_factory=Counter)

    async def unlock(self, session: aiohttp.ClientSession) -> bool:
        """One unlock; True on a 200 (its pod_id noted)."""
        try:
            async with session.post(self.url, json={"code": self.code}) as response:
                body = await response.json(content_type=None)
                if response.status == 200:
                    self.pods.append(body["pod_id"])
                    return True
                self.other[response.status] += 1
        except aiohttp.ClientConnectorError:
            self.refused += 1
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            self.interrupted += 1
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Unlock until ``stop`` is set; a failed attempt waits a moment before the next."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=UNLOCK_TIMEOUT) as session:
            while not stop.is_set():
                if not await self.unlock(session):
                    await asyncio.sleep(POLL_SECONDS)

    async def burst(self, count: int) -> None:
        """Exactly ``count`` successful unlocks (the hub must be up)."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=UNLOCK_TIMEOUT) as session:
            done = 0
            while done < count:
                if await self.unlock(session):
                    done += 1
                else:
                    assert self.refused + self.interrupted < 1000, "the hub stopped answering"
                    await asyncio.sleep(POLL_SECONDS)
