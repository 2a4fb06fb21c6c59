"""``lockhub gateway run`` as a real process under signals: SIGTERM mid-burst, SIGHUP reloads,
and a full day's run whose output holds no code, token or key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.tokens import CourierTokenClaims, issue_courier_token
from gateway.identity import load_identity
from tests.infra.services import free_port

from .conftest import ADMIN_TOKEN
from .test_process import LOCKHUB, REPO, env, key_material, lockhub

pytestmark = pytest.mark.slow

HUB_ID = "hub-signals"
KID = "cloud-1"
# A cold start imports the daemon and opens the store: well under a second; allow ten.
START_SECONDS = 10.0
# Well inside the unit's TimeoutStopSec=45 even with the drain at work.
STOP_SECONDS = 15.0
# Logs and reloads land within milliseconds; polls give up after this long.
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05

CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "{state}"

[mqtt]
url = "mqtt://127.0.0.1:1"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"
admin_token_file = "{token_file}"

[access]
grace_seconds = {grace}
# The test machine's clock may not be synchronised; policy is not what these tests check.
untrusted_clock_policy = "allow"
lockout_threshold = {threshold}

[log]
level = "{level}"
{locks}
"""
FRONT_DOOR = """
[[locks]]
id = "front-door"
driver = "sim"
[locks.options]
latency = {latency}
battery_percent = {battery}
"""
BACK_DOOR = """
[[locks]]
id = "back-door"
driver = "sim"
"""


@dataclass
class HubProcess:
    """A hub daemon in a subprocess, its config file, and the cloud key that signs its commands."""

    tmp: Path
    port: int = field(default_factory=free_port)
    cloud: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    process: subprocess.Popen[bytes] | None = None
    http: aiohttp.ClientSession | None = None
    seq: int = 0
    secrets: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.tmp / "gateway.toml"

    @property
    def log(self) -> Path:
        return self.tmp / "hub.log"

    def write(
        self,
        *,
        level: str = "info",
        grace: int = 0,
        threshold: int = 5,
        latency: float = 0.0,
        battery: int = 100,
        back_door: bool = False,
        extra: str = "",
    ) -> None:
        """Write the config file (the running daemon reads it again on SIGHUP)."""
        token_file = self.tmp / "admin-token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        token_file.chmod(0o600)
        locks = FRONT_DOOR.format(latency=latency, battery=battery)
        key = p.public_key_b64(self.cloud.public_key())
        text = CONFIG.format(
            hub_id=HUB_ID,
            kid=KID,
            key=key,
            state=self.tmp / "state",
            port=self.port,
            token_file=token_file,
            grace=grace,
            threshold=threshold,
            level=level,
            locks=locks + (BACK_DOOR if back_door else ""),
        )
        self.config.write_text(text + extra)

    async def start(self) -> None:
        assert lockhub("init", "--config", str(self.config)).returncode == 0
        with self.log.open("wb") as out:
            # Popen returns at once (the child runs on); no blocking wait in the event loop.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [*LOCKHUB, "run", "--config", str(self.config)],
                env=env(),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.port}")
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with self.http.get("/readyz") as answer:
                    if answer.status == 200:
                        return
            assert time.monotonic() < deadline, "the hub never became ready"
            await asyncio.sleep(POLL_SECONDS)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, STOP_SECONDS)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def events(self) -> list[dict[str, Any]]:
        """Every log line so far (JSON: the output is not a terminal)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    async def until_logged(self, event: str, count: int = 1) -> dict[str, Any]:
        """Wait for the ``count``-th ``event`` log line; return it."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            found = [e for e in self.events() if e["event"] == event]
            if len(found) >= count:
                return found[count - 1]
            assert time.monotonic() < deadline, f"no {event} logged"
            await asyncio.sleep(POLL_SECONDS)

    # The cloud's side: signed commands, sealed codes, courier tokens.

    def command(self, type_: str, body: dict[str, Any]) -> bytes:
        self.seq += 1
        now = datetime.now(UTC)
        payload = p.command_payload(
            type=type_,  # type: ignore[arg-type]
            hub_id=HUB_ID,
            seq=self.seq,
            issued_at=now,
            expires_at=now + timedelta(minutes=10),
            body=body,
        )
        return p.encode_batch([p.sign(payload, self.cloud, KID)])

    def window(self, window_id: str, code: str, **changes: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "window_id": window_id,
            "tenant_id": "acme",
            "task_id": f"task-{window_id}",
            "lock_id": "front-door",
            "starts_at": p.rfc3339(now - timedelta(minutes=1)),
            "ends_at": p.rfc3339(now + timedelta(hours=1)),
            "version": 1,
            "max_uses": None,
            "enforcement": "hub",
        }
        body.update(changes)
        sealing = load_identity(self.tmp / "state").sealing.public_key()
        body["code_sealed"] = p.seal_code(code, window_id, sealing)
        self.secrets += [code, body["code_sealed"]]
        return body

    def token(self, window_id: str, key: Ed25519PrivateKey | None = None) -> str:
        now = int(time.time())
        claims = CourierTokenClaims(
            v=1,
            jti=p.new_ulid(),
            aud=HUB_ID,
            sub="courier-7",
            name="Sam",
            win=window_id,
            lock="front-door",
            ten="acme",
            task=f"task-{window_id}",
            nbf=now - 60,
            exp=now + 3600,
            max=1,
        )
        token = issue_courier_token(claims, p.Signer(KID, key or self.cloud))
        self.secrets += [token, token.split(".")[-1]]
        return token

    async def send(self, batch: bytes) -> list[str]:
        answer = await self.post("/v1/admin/commands", data=batch, admin=True)
        return [r["result"] for r in answer[1]["results"]]

    async def post(
        self, path: str, *, data: bytes | None = None, body: Any = None, admin: bool = False
    ) -> tuple[int, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        async with self.http.post(path, data=data, json=body, headers=headers) as answer:
            return answer.status, await answer.json()

    async def admin(self, path: str) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.get(path, headers=headers) as answer:
            assert answer.status == 200
            return await answer.json()

    async def unlock(self, **credential: str) -> tuple[int, Any]:
        return await self.post("/v1/locks/front-door/unlock", body=credential)


@contextlib.asynccontextmanager
async def hub_process(tmp_path: Path, **settings: Any) -> AsyncIterator[HubProcess]:
    hub = HubProcess(tmp_path)
    hub.write(**settings)
    try:
        await hub.start()
        yield hub
    finally:
        await hub.close()


def pods_in_store(state: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(state / "hub.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT payload FROM records WHERE type = 'pod.recorded'").fetchall()
    return {json.loads(payload)["body"]["pod_id"] for (payload,) in rows}


async def test_sigterm_mid_burst_finishes_the_unlocks_in_flight_and_closes_the_store(
    tmp_path: Path,
) -> None:
    # Each unlock holds the (simulated) radio 50 ms and the coordinator serialises them: a
    # burst of 12 is still in flight well after SIGTERM.
    async with hub_process(tmp_path, latency=0.05) as hub:
        assert await hub.send(hub.command("window.upsert", hub.window("w-1", "40718263"))) == [
            "applied"
        ]
        burst = [asyncio.create_task(hub.unlock(code="40718263")) for _ in range(12)]
        await hub.until_logged("pod.recorded")
        hub.signal(signal.SIGTERM)
        answers = await asyncio.gather(*burst)
        assert await hub.wait() == 0
        events = [e["event"] for e in hub.events()]

    assert [status for status, _ in answers] == [200] * 12
    # Some unlocks were confirmed after the shutdown began: the drain let them finish.
    stopping = events.index("gateway.stopping")
    assert "pod.recorded" in events[stopping:]
    assert events[-1] == "gateway.stopped"
    assert "store.closed" in events[stopping:]
    assert {body["pod_id"] for _, body in answers} <= pods_in_store(tmp_path / "state")


async def test_sighup_reloads_locks_policy_and_log_level_and_refuses_a_bad_file(
    tmp_path: Path,
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=90)
    async with hub_process(tmp_path) as hub:
        window = hub.window("w-soon", "55190427", starts_at=p.rfc3339(soon))
        assert await hub.send(hub.command("window.upsert", window)) == ["applied"]
        (view,) = (await hub.admin("/v1/admin/windows"))["windows"]
        assert view["state"] == "scheduled"

        # Add a lock, change one (battery), widen the grace, tighten the lockouts.
        hub.write(back_door=True, battery=40, grace=120, threshold=2)
        hub.signal(signal.SIGHUP)
        reloaded = await hub.until_logged("config.reloaded")
        assert reloaded["started"] == ["back-door", "front-door"]
        assert reloaded["stopped"] == ["front-door"]
        locks = {lock["lock_id"]: lock for lock in (await hub.admin("/v1/admin/locks"))["locks"]}
        assert sorted(locks) == ["back-door", "front-door"]
        assert locks["front-door"]["battery_percent"] == 40  # the changed lock was restarted
        (view,) = (await hub.admin("/v1/admin/windows"))["windows"]
        assert view["state"] == "active"  # 90 s ahead is inside the new 120 s grace
        assert (await hub.unlock(code="55190427"))[0] == 200
        assert [(await hub.unlock(code="00000000"))[0] for _ in range(3)] == [403, 403, 423]

        # A file with an error changes nothing; the log names the file and the field.
        hub.write(back_door=False, grace=-5)
        hub.signal(signal.SIGHUP)
        refused = await hub.until_logged("config.reload_refused")
        assert refused["source"] == str(hub.config)
        assert any("access.grace_seconds" in line for line in refused["errors"])
        locks = (await hub.admin("/v1/admin/locks"))["locks"]
        assert sorted(lock["lock_id"] for lock in locks) == ["back-door", "front-door"]

        # Raise the level to warning and remove the back door: info lines stop.
        hub.write(level="warning", battery=40, grace=120, threshold=2)
        hub.signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_SECONDS
        while len((await hub.admin("/v1/admin/locks"))["locks"]) != 1:
            assert time.monotonic() < deadline, "the back door was never removed"
            await asyncio.sleep(POLL_SECONDS)
        quiet_from = len(hub.events())
        later = hub.window("w-later", "31313131")
        assert await hub.send(hub.command("window.upsert", later)) == ["applied"]
        # Back to info: the reload is logged again, and the mqtt port change needs a restart.
        hub.write(battery=40, grace=120, threshold=2)
        moved = hub.config.read_text().replace('"mqtt://127.0.0.1:1"', '"mqtt://127.0.0.1:10"')
        hub.config.write_text(moved)
        hub.signal(signal.SIGHUP)
        await hub.until_logged("config.reloaded", count=2)
        hub.signal(signal.SIGTERM)
        assert await hub.wait() == 0
        after = hub.events()[quiet_from:]

    quiet = after[: next(i for i, e in enumerate(after) if e["event"] == "config.restart_needed")]
    assert [e["event"] for e in quiet if e["level"] == "info"] == []
    # w-later was applied at level warning: its command.applied line never appeared.
    assert [e["event"] for e in after].count("command.applied") == 0
    assert next(e for e in after if e["event"] == "config.restart_needed")["sections"] == ["mqtt"]


async def test_a_full_run_logs_no_code_token_or_key(tmp_path: Path) -> None:
    async with hub_process(tmp_path) as hub:
        windows = [
            hub.window("w-code", "40718263"),
            hub.window("w-token", "61616161"),
            hub.window("w-keypad", "70707070", enforcement="lock"),
        ]
        for window in windows:
            assert await hub.send(hub.command("window.upsert", window)) == ["applied"]
        await hub.until_logged("provision.set_on_lock")  # the keypad code is on the lock
        assert (await hub.unlock(code="40718263"))[0] == 200
        assert (await hub.unlock(token=hub.token("w-token")))[0] == 200
        assert (await hub.unlock(code="12345678"))[0] == 403
        forged = hub.token("w-token", key=Ed25519PrivateKey.generate())
        assert (await hub.unlock(token=forged))[0] == 403
        for path in ("windows", "locks", "outbox", "lockouts"):
            await hub.admin(f"/v1/admin/{path}")
        assert hub.http is not None
        async with hub.http.get("/metrics") as answer:
            assert answer.status == 200
        revoke = {"window_id": "w-code", "version": 1, "reason": "cancelled"}
        assert await hub.send(hub.command("window.revoke", revoke)) == ["applied"]
        hub.signal(signal.SIGHUP)
        await hub.until_logged("config.reloaded")
        hub.signal(signal.SIGTERM)
        assert await hub.wait() == 0
        logged = hub.log.read_text()

    cloud_private = hub.cloud.private_bytes_raw()
    assert "pod.recorded" in logged  # the run did log what it did
    assert "command.applied" in logged
    forms = [*hub.secrets, *key_material(tmp_path / "state")]
    forms += [base64.urlsafe_b64encode(cloud_private).decode().rstrip("="), cloud_private.hex()]
    leaked = [form for form in forms if form in logged]
    assert leaked == []


async def test_sighup_applies_a_changed_clock_sync_flag(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    flag.touch()

    def write_flag(path: Path) -> None:
        text = hub.config.read_text()
        line = f'clock_sync_flag = "{path}"\n'
        hub.config.write_text(text.replace("[log]\n", line + "\n[log]\n", 1))

    async def synced() -> bool:
        assert hub.http is not None
        async with hub.http.get("/v1/status") as answer:
            assert answer.status == 200
            value: bool = (await answer.json())["clock"]["synced"]
            return value

    hub = HubProcess(tmp_path)
    hub.write()
    write_flag(flag)
    try:
        await hub.start()
        assert await synced()
        # Point the hub at a flag that is not there (another time daemon's, say): untrusted.
        hub.write()
        write_flag(tmp_path / "no-such-flag")
        hub.signal(signal.SIGHUP)
        await hub.until_logged("clock.sync_flag_changed")
        deadline = time.monotonic() + WAIT_SECONDS
        while await synced():
            assert time.monotonic() < deadline, "the new sync flag was never read"
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await hub.close()
