"""The demo's steps, in order; each returns a one-line detail or raises DemoFailedError."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import ClientSession, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.tokens import CourierTokenClaims, issue_courier_token

from ..api import ApiParts, build_app
from ..config import load_gateway_config
from ..daemon import build_hub, start_hub, stop_hub
from ..hubmetrics import hub_metrics
from ..identity import load_identity
from ..keyfile import read_key_file
from .scene import (
    CLOUD_KID,
    CLOUD_TOML,
    DEMO_CODE,
    GATEWAY_TOML,
    HUB_ID,
    KEYPAD_CODE,
    Demo,
    expect,
    free_port,
)

WRONG_CODES = ("11111111", "22222222", "33333333", "44444444", "55555555")


async def step_identities(demo: Demo) -> str:
    """Create the cloud's and the hub's keys with the real CLI; a second init keeps them."""
    (demo.workdir / "cloud.toml").write_text(CLOUD_TOML.format(kid=CLOUD_KID))
    demo.cli("cloud", "init", "--config", "cloud.toml")
    cloud = json.loads(demo.cli("cloud", "identity", "--config", "cloud.toml"))
    demo.cloud_key = Ed25519PrivateKey.from_private_bytes(
        read_key_file(demo.workdir / "cloud" / "command-signing.key")
    )
    gateway_toml = demo.workdir / "gateway.toml"
    gateway_toml.write_text(
        GATEWAY_TOML.format(
            hub_id=HUB_ID, kid=cloud["kid"], key=cloud["signing_key"], port=free_port()
        )
    )
    token_file = demo.workdir / "admin-token"
    token_file.write_text(demo.admin_token)
    token_file.chmod(0o600)
    demo.cli("gateway", "init", "--config", "gateway.toml")
    first = demo.cli("gateway", "identity", "--config", "gateway.toml")
    demo.cli("gateway", "init", "--config", "gateway.toml")
    again = demo.cli("gateway", "identity", "--config", "gateway.toml")
    expect(again == first, "a second init changed the keys")
    demo.files += [gateway_toml, demo.workdir / "cloud.toml"]
    return f"hub {json.loads(first)['hub_id']} and cloud key {cloud['kid']} (files 0600)"


async def step_start_hub(demo: Demo) -> str:
    """Start the hub: store, access engine, two simulated locks, the local API."""
    config = load_gateway_config(demo.workdir / "gateway.toml")
    demo.keys = load_identity(config.hub.state_dir)
    hub = demo.hub = await build_hub(config)
    demo.cleanup.append(lambda: stop_hub(hub))
    await start_hub(hub)
    engine_task = asyncio.create_task(hub.engine.run())

    async def stop_engine() -> None:
        engine_task.cancel()
        await asyncio.gather(engine_task, return_exceptions=True)

    demo.cleanup.append(stop_engine)
    parts = ApiParts(hub.engine, hub.intake, hub_metrics(hub.engine), demo.admin_token, hub.ready)
    runner = web.AppRunner(build_app(parts), access_log=None)
    await runner.setup()
    demo.cleanup.append(runner.cleanup)
    await web.TCPSite(runner, config.api.host, config.api.port).start()
    demo.base_url = f"http://{config.api.host}:{config.api.port}"
    demo.http = ClientSession()
    demo.cleanup.append(demo.http.close)
    demo.files.append(hub.store.path)
    status, body, _ = await demo.get("/readyz")
    expect(status == 200, f"the hub is not ready: {body}")
    return f"{demo.base_url} ready; locks {', '.join(sorted(hub.coordinators))}"


async def step_window_command(demo: Demo) -> str:
    """The cloud seals a courier code and signs window.upsert; the hub verifies and applies."""
    demo.batch = demo.command("window.upsert", demo.window("win-0001", DEMO_CODE))
    expect(DEMO_CODE.encode() not in demo.batch, "the code travelled in clear")
    (demo.workdir / "down-commands.json").write_bytes(demo.batch)
    demo.files.append(demo.workdir / "down-commands.json")
    status, body, _ = await demo.post("/v1/admin/commands", data=demo.batch, admin=True)
    expect(status == 200, f"the command was not applied: {body}")
    _, _, hub = demo.parts()
    source = hub.clock.status().source
    return f"win-0001 applied; the signed command also vouches for the hub's clock ({source})"


async def step_replay_and_forgery(demo: Demo) -> str:
    """The same command again, and one with a changed signature, are both refused."""
    status, body, _ = await demo.post("/v1/admin/commands", data=demo.batch, admin=True)
    replay = body["results"][0]["reason"]
    expect((status, replay) == (422, "replayed"), f"a replay was not refused: {body}")
    (envelope,) = p.decode_batch(demo.batch)
    signature = envelope["signature"]
    flipped = "A" if signature[20] != "A" else "B"
    forged = p.encode_batch([{**envelope, "signature": signature[:20] + flipped + signature[21:]}])
    status, body, _ = await demo.post("/v1/admin/commands", data=forged, admin=True)
    forgery = body["results"][0]["reason"]
    expect((status, forgery) == (422, "bad_signature"), f"a forgery was not refused: {body}")
    return f"replay refused ({replay}), forgery refused ({forgery})"


async def step_courier_code(demo: Demo) -> str:
    """A courier's code opens the front door once; the lock confirms; a PoD is recorded."""
    status, body, _ = await demo.post("/v1/locks/front-door/unlock", body={"code": DEMO_CODE})
    expect(status == 200, f"the courier's code was refused: {status} {body}")
    expect(demo.sim("front-door").snapshot().state.value == "unlocked", "the door stayed locked")
    again, _, _ = await demo.post("/v1/locks/front-door/unlock", body={"code": DEMO_CODE})
    expect(again == 403, f"a single-use code opened twice ({again})")
    return f"200 unlocked, pod {body['pod_id']}; the same code again: 403 (max_uses 1)"


async def step_courier_token(demo: Demo) -> str:
    """A courier token for a window whose push never reached the hub opens the door offline."""
    cloud_key, _, _ = demo.parts()
    now = int(datetime.now(UTC).timestamp())
    claims = CourierTokenClaims(
        v=1,
        jti=p.new_ulid(),
        aud=HUB_ID,
        sub="courier-9",
        name="Ana",
        win="win-0002",
        lock="front-door",
        ten="acme",
        task="task-win-0002",
        nbf=now - 60,
        exp=now + 3600,
        max=1,
    )
    token = issue_courier_token(claims, p.Signer(CLOUD_KID, cloud_key))
    status, body, _ = await demo.post("/v1/locks/front-door/unlock", body={"token": token})
    expect(status == 200, f"the token was refused: {status} {body}")
    return f"token ({len(token)} characters) verified offline, pod {body['pod_id']}"


async def step_keypad(demo: Demo) -> str:
    """A lock-enforced window: the code goes onto the parcel room's keypad and is used there."""
    body = demo.window("win-0003", KEYPAD_CODE, lock_id="parcel-room", enforcement="lock")
    status, answer, _ = await demo.post(
        "/v1/admin/commands", data=demo.command("window.upsert", body), admin=True
    )
    expect(status == 200, f"the keypad window was not applied: {answer}")
    keypad = demo.sim("parcel-room")

    async def programmed() -> bool:
        return bool(keypad.keypad_codes())

    await demo.wait_for("the code on the keypad", programmed)
    expect(keypad.press(KEYPAD_CODE), "the keypad refused the programmed code")

    async def attributed() -> bool:
        pods = [r for r in await demo.records() if r["type"] == "pod.recorded"]
        return any(r["body"]["method"] == "lock_keypad" for r in pods)

    await demo.wait_for("the keypad PoD", attributed)
    return "code set on the keypad, typed by the courier, PoD attributed by keypad code id"


async def step_lockout(demo: Demo) -> str:
    """Five wrong codes from one source lock it out; the sixth attempt gets 423."""
    answers = []
    for code in WRONG_CODES:
        status, _, _ = await demo.post("/v1/locks/front-door/unlock", body={"code": code})
        answers.append(status)
    expect(answers == [403] * len(WRONG_CODES), f"wrong codes answered {answers}")
    status, _, headers = await demo.post("/v1/locks/front-door/unlock", body={"code": DEMO_CODE})
    expect(status == 423, f"no lockout after {len(WRONG_CODES)} wrong codes ({status})")
    return f"5 x 403 (same answer each time), then 423 Retry-After {headers['Retry-After']} s"


async def step_cloud_verifies(demo: Demo) -> str:
    """The outbox goes up as one batch; the cloud verifies signatures, types and the chain."""
    _, keys, hub = demo.parts()
    batch = p.encode_batch([r.envelope for r in await hub.store.unacked(10_000)])
    (demo.workdir / "up-records.json").write_bytes(batch)
    demo.files.append(demo.workdir / "up-records.json")
    expect(DEMO_CODE.encode() not in batch, "a code leaked into a record")
    hub_key = {HUB_ID: keys.signing.public_key()}
    verified = [p.verify(envelope, hub_key) for envelope in p.decode_batch(batch)]
    records = [p.accept_record(v, hub_id=HUB_ID) for v in verified]
    p.verify_chain([v.payload for v in verified])
    pods = sum(1 for r in records if r.type == "pod.recorded")
    expect(pods == 3, f"expected 3 PoD records, found {pods}")
    return f"{len(records)} records verified, chain intact, {pods} proofs of delivery"


async def step_ack(demo: Demo) -> str:
    """The cloud signs records.ack; the hub verifies it and only then marks records acked."""
    cloud_key, _, hub = demo.parts()
    head = await hub.store.chain_head()
    ack = p.ack_payload(hub_id=HUB_ID, issued_at=datetime.now(UTC), acked=[(1, head.seq)])
    (envelope,) = p.decode_batch(p.encode_batch([p.sign(ack, cloud_key, CLOUD_KID)]))
    verified = p.verify(envelope, {CLOUD_KID: cloud_key.public_key()})
    acked = await hub.store.ack(p.accept_ack(verified, hub_id=HUB_ID).body.acked)
    depth = await hub.store.outbox_depth()
    expect(acked >= head.seq and depth == 0, f"acked {acked} of {head.seq}, depth {depth}")
    return f"records 1..{head.seq} acked, outbox depth 0"


Step = Callable[[Demo], Awaitable[str]]
STEPS: list[tuple[str, Step]] = [
    ("keys for the cloud and the hub (lockhub cloud|gateway init, identity)", step_identities),
    ("hub started: store, access engine, simulated locks, local API", step_start_hub),
    ("window command: sealed, signed, verified, applied", step_window_command),
    ("replayed and forged commands refused", step_replay_and_forgery),
    ("courier opens the front door with a code", step_courier_code),
    ("courier opens with a token, offline", step_courier_token),
    ("lock-enforced code on the keypad", step_keypad),
    ("brute force locked out", step_lockout),
    ("records verified as the cloud will", step_cloud_verifies),
    ("signed ack clears the outbox", step_ack),
]
