"""`lockhub demo`: the foundation end to end on embedded defaults, every step checked.

It runs the real CLI to create the cloud's and the hub's keys, then plays the wire contract
between them without a network: a sealed window command from the cloud, verified and applied by
the hub; a replay and a forgery refused; signed, chained records appended to the hub's SQLite
outbox, verified as the cloud will verify them, and acknowledged. The MQTT link, the access
engine and the cloud service join this demo as they land (README.md lists what works today).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud_sync import protocol as p
from cloud_sync.protocol.messages import WindowUpsert

from .config import load_gateway_config
from .identity import HubKeys, load_identity
from .keyfile import read_key_file
from .logs import configure_logging
from .store import NewRecord, Store

HUB_ID = "hub-demo"
CLOUD_KID = "cloud-demo"
STORE_FILE = "hub.db"
# A courier code as the cloud would generate it (8 digits); the demo shows it only sealed.
DEMO_CODE = "40718263"
# Commands live minutes, not days: a captured command is useless soon after.
COMMAND_TTL = timedelta(minutes=10)

CLOUD_TOML = """[cloud]
state_dir = "cloud"
database_url = "sqlite+aiosqlite:///cloud/cloud.db"
signing_kid = "{kid}"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[api]
listen = "127.0.0.1:8081"
"""

GATEWAY_TOML = """[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[[locks]]
id = "front-door"
driver = "sim"
"""


class DemoFailedError(Exception):
    """A demo step did not check out."""


def expect(condition: bool, what: str) -> None:
    """Raise DemoFailedError naming ``what`` unless ``condition`` holds."""
    if not condition:
        raise DemoFailedError(what)


@dataclass
class Demo:
    """What the steps share: the working directory, keys, the hub's store."""

    workdir: Path
    cloud_key: Ed25519PrivateKey | None = None
    hub: HubKeys | None = None
    store: Store | None = None
    command_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    replay: p.ReplayGuard = field(default_factory=p.ReplayGuard)
    command_batch: bytes = b""
    files: list[Path] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        """Run the real ``lockhub`` CLI in a subprocess; return its stdout."""
        argv = [sys.executable, "-m", "gateway.cli", *args]
        done = subprocess.run(  # noqa: S603 - fixed argv, our own CLI
            argv, cwd=self.workdir, capture_output=True, text=True, check=False
        )
        expect(done.returncode == 0, f"`lockhub {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout

    def keys(self) -> tuple[Ed25519PrivateKey, HubKeys, Store]:
        """Return the cloud key, hub keys and store, once the first steps have made them."""
        if self.cloud_key is None or self.hub is None or self.store is None:
            raise DemoFailedError("an earlier step did not create the keys and the store")
        return self.cloud_key, self.hub, self.store


async def step_identities(demo: Demo) -> str:
    """Create the cloud's and the hub's keys with the real CLI; init twice keeps them."""
    (demo.workdir / "cloud.toml").write_text(CLOUD_TOML.format(kid=CLOUD_KID))
    demo.cli("cloud", "init", "--config", "cloud.toml")
    cloud = json.loads(demo.cli("cloud", "identity", "--config", "cloud.toml"))
    demo.cloud_key = Ed25519PrivateKey.from_private_bytes(
        read_key_file(demo.workdir / "cloud" / "command-signing.key")
    )
    gateway_toml = demo.workdir / "gateway.toml"
    gateway_toml.write_text(
        GATEWAY_TOML.format(hub_id=HUB_ID, kid=cloud["kid"], key=cloud["signing_key"])
    )
    demo.cli("gateway", "init", "--config", "gateway.toml")
    first = demo.cli("gateway", "identity", "--config", "gateway.toml")
    demo.cli("gateway", "init", "--config", "gateway.toml")
    expect(
        demo.cli("gateway", "identity", "--config", "gateway.toml") == first, "init rotated keys"
    )
    config = load_gateway_config(gateway_toml)
    demo.hub = load_identity(config.hub.state_dir)
    demo.command_keys = p.load_command_keys(config.cloud.command_keys)
    demo.files += [gateway_toml, demo.workdir / "cloud.toml"]
    return f"hub {json.loads(first)['hub_id']} and cloud key {cloud['kid']} (files 0600)"


async def step_open_store(demo: Demo) -> str:
    """Open the hub's SQLite store (migrations, WAL, integrity check)."""
    if demo.hub is None:
        raise DemoFailedError("the hub has no keys")
    path = demo.workdir / "hub" / STORE_FILE
    demo.store = await Store.open(
        path,
        signer=p.Signer(HUB_ID, demo.hub.signing),
        hub_id=HUB_ID,
        now=lambda: datetime.now(UTC),
    )
    demo.files.append(path)
    return f"{path.name} ready, outbox depth {await demo.store.outbox_depth()}"


def _window_command(cloud_key: Ed25519PrivateKey, hub: HubKeys, seq: int) -> bytes:
    now = datetime.now(UTC)
    window_id = "win-0001"
    body = {
        "window_id": window_id,
        "tenant_id": "acme",
        "task_id": "task-0001",
        "lock_id": "front-door",
        "starts_at": p.rfc3339(now),
        "ends_at": p.rfc3339(now + timedelta(hours=2)),
        "version": 1,
        "max_uses": 1,
        "enforcement": "hub",
        "code_sealed": p.seal_code(DEMO_CODE, window_id, hub.sealing.public_key()),
        "courier": {"id": "courier-7", "name": "Sam"},
    }
    payload = p.command_payload(
        type="window.upsert",
        hub_id=HUB_ID,
        seq=seq,
        issued_at=now,
        expires_at=now + COMMAND_TTL,
        body=body,
    )
    return p.encode_batch([p.sign(payload, cloud_key, CLOUD_KID)])


def _code_hash(hub: HubKeys, code: str) -> bytes:
    return hmac.new(hub.code_secret, code.encode(), hashlib.sha256).digest()


def _clock() -> dict[str, object]:
    # The demo runs on a developer machine; its clock trust is not checked here.
    return {"synced": False, "source": "demo"}


def _result(command: p.Command, kid: str, result: str, reason: str | None = None) -> NewRecord:
    body: dict[str, object] = {
        "command_id": command.id,
        "command_type": command.type,
        "kid": kid,
        "seq": command.seq,
        "result": result,
        "clock": _clock(),
    }
    if reason is not None:
        body["reason"] = reason
    return NewRecord("command.result", body)


async def _receive(demo: Demo, batch: bytes) -> tuple[p.Verified, p.Command]:
    """What the hub does with a message on down/commands: verify, check, replay-guard."""
    (envelope,) = p.decode_batch(batch)
    verified = p.verify(envelope, demo.command_keys)
    command = p.accept_command(verified, hub_id=HUB_ID, now=datetime.now(UTC))
    return verified, command


async def step_window_command(demo: Demo) -> str:
    """The cloud seals a courier code and signs window.upsert; the hub verifies and applies it."""
    cloud_key, hub, store = demo.keys()
    demo.command_batch = _window_command(cloud_key, hub, seq=1)
    (demo.workdir / "down-commands.json").write_bytes(demo.command_batch)
    demo.files.append(demo.workdir / "down-commands.json")
    expect(DEMO_CODE.encode() not in demo.command_batch, "the code travelled in clear")
    verified, command = await _receive(demo, demo.command_batch)
    await store.save_replay(verified.kid, demo.replay.accept(verified.kid, command.seq))
    if not isinstance(command, WindowUpsert):
        raise DemoFailedError(f"decoded {command.type}, sent window.upsert")
    body = command.body
    code = p.open_code(body.code_sealed, body.window_id, hub.sealing)
    expect(hmac.compare_digest(_code_hash(hub, code), _code_hash(hub, DEMO_CODE)), "code differs")
    await store.append_records(
        [
            _result(command, verified.kid, "applied"),
            NewRecord(
                "window.status",
                {
                    "window_id": body.window_id,
                    "version": body.version,
                    "status": "applied",
                    "clock": _clock(),
                },
            ),
        ]
    )
    return f"{body.window_id} v{body.version} verified, code opened from its HPKE seal"


async def step_replay_refused(demo: Demo) -> str:
    """The same command delivered again (a broker redelivery or an attacker) is refused."""
    _, _, store = demo.keys()
    verified, command = await _receive(demo, demo.command_batch)
    try:
        demo.replay.accept(verified.kid, command.seq)
    except p.ReplayError as exc:
        await store.append_records([_result(command, verified.kid, "rejected", exc.reason)])
        return f"seq {command.seq} from {verified.kid} refused: {exc.reason}"
    raise DemoFailedError("a replayed command was accepted")


async def step_forgery_refused(demo: Demo) -> str:
    """A command changed on the way (one payload character) fails its signature."""
    (envelope,) = p.decode_batch(demo.command_batch)
    payload = envelope["payload"]
    flipped = "A" if payload[10] != "A" else "B"
    forged = {**envelope, "payload": payload[:10] + flipped + payload[11:]}
    try:
        await _receive(demo, p.encode_batch([forged]))
    except p.ProtocolError as exc:
        return f"tampered command refused ({type(exc).__name__})"
    raise DemoFailedError("a tampered command was accepted")


async def step_pod_record(demo: Demo) -> str:
    """A proof-of-delivery record is signed, chained and committed to the outbox."""
    _, _, store = demo.keys()
    now = datetime.now(UTC)
    (pod,) = await store.append_records(
        [
            NewRecord(
                "pod.recorded",
                {
                    "pod_id": p.new_ulid(),
                    "window_id": "win-0001",
                    "task_id": "task-0001",
                    "tenant_id": "acme",
                    "lock_id": "front-door",
                    "method": "hub_code",
                    "credential_ref": "window:win-0001",
                    "unlocked_at": p.rfc3339(now),
                    "relocked_at": p.rfc3339(now + timedelta(seconds=9)),
                    "clock": _clock(),
                    "lock_event": {"vendor": "sim", "type": "unlock", "vendor_event_id": "ev-1"},
                },
            )
        ]
    )
    return f"pod.recorded stored as seq {pod.seq}, outbox depth {await store.outbox_depth()}"


async def step_cloud_verifies(demo: Demo) -> str:
    """The outbox goes up as one batch; the cloud verifies signatures, types and the chain."""
    _, hub, store = demo.keys()
    batch = p.encode_batch([record.envelope for record in await store.unacked(100)])
    (demo.workdir / "up-records.json").write_bytes(batch)
    demo.files.append(demo.workdir / "up-records.json")
    hub_key = {HUB_ID: hub.signing.public_key()}
    verified = [p.verify(envelope, hub_key) for envelope in p.decode_batch(batch)]
    records = [p.accept_record(v, hub_id=HUB_ID) for v in verified]
    p.verify_chain([v.payload for v in verified])
    kinds = ", ".join(record.type for record in records)
    return f"{len(records)} records verified, chain intact ({kinds})"


async def step_ack(demo: Demo) -> str:
    """The cloud signs records.ack; the hub verifies it and only then marks records acked."""
    cloud_key, _, store = demo.keys()
    head = await store.chain_head()
    ack = p.ack_payload(hub_id=HUB_ID, issued_at=datetime.now(UTC), acked=[(1, head.seq)])
    (envelope,) = p.decode_batch(p.encode_batch([p.sign(ack, cloud_key, CLOUD_KID)]))
    verified = p.verify(envelope, demo.command_keys)
    ranges = p.accept_ack(verified, hub_id=HUB_ID).body.acked
    acked = await store.ack(ranges)
    depth = await store.outbox_depth()
    expect(acked == head.seq and depth == 0, f"acked {acked} of {head.seq}, depth {depth}")
    return f"records 1..{head.seq} acked, outbox depth 0"


STEPS: list[tuple[str, Callable[[Demo], Awaitable[str]]]] = [
    ("keys for the cloud and the hub (lockhub cloud|gateway init, identity)", step_identities),
    ("hub store opened", step_open_store),
    ("window command: sealed, signed, verified, applied", step_window_command),
    ("replayed command refused", step_replay_refused),
    ("forged command refused", step_forgery_refused),
    ("proof of delivery recorded", step_pod_record),
    ("records verified as the cloud will", step_cloud_verifies),
    ("signed ack clears the outbox", step_ack),
]


async def run(workdir: Path) -> int:
    """Run every step, printing progress; return 0 only if all checked out."""
    demo = Demo(workdir)
    started = time.monotonic()
    try:
        for number, (title, step) in enumerate(STEPS, start=1):
            print(f"[{number}/{len(STEPS)}] {title} ...", flush=True)
            try:
                detail = await step(demo)
            except (DemoFailedError, p.ProtocolError, OSError) as exc:
                print(f"      FAILED: {exc}", flush=True)
                return 1
            print(f"      ok: {detail}", flush=True)
    finally:
        if demo.store is not None:
            await demo.store.close()
    print(f"\nall {len(STEPS)} steps checked out in {time.monotonic() - started:.1f} s; files:")
    for path in demo.files:
        print(f"  {path}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``lockhub demo``."""
    parser = argparse.ArgumentParser(prog="lockhub demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, help="empty work directory for the files (default: a new temp dir)"
    )
    args = parser.parse_args(argv)
    # Progress lines are the demo's output; the parts' own info logs would drown them.
    configure_logging("warning", "console")
    workdir: Path = args.dir or Path(tempfile.mkdtemp(prefix="lockhub-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        print(f"lockhub demo: error: {workdir} is not empty; pass an empty --dir", file=sys.stderr)
        return 2
    return asyncio.run(run(workdir.resolve()))
