"""The retained ``offline`` Last Will when a real ``lockhub gateway run`` process dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol import topics
from gateway.identity import HubKeys
from tests.infra.services import MosquittoBroker, free_port

from .conftest import HUB_ID, PREFIX, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOCKHUB = [sys.executable, "-m", "gateway.cli", "gateway"]
# A cold start imports the daemon and opens the store in about a second; allow ten.
START_SECONDS = 10.0


async def next_status(messages: Any) -> dict[str, Any]:
    """The next message on the status topic, decoded."""
    async with asyncio.timeout(START_SECONDS):
        message = await anext(messages)
    status: dict[str, Any] = json.loads(message.payload)
    return status


async def test_a_killed_hub_leaves_its_retained_offline_will(
    tmp_path: Path, mosquitto: MosquittoBroker, hub_keys: HubKeys
) -> None:
    config = write_config(tmp_path, mosquitto.url, Ed25519PrivateKey.generate(), "auto")
    with config.open("a") as extra:
        extra.write(f'\n[api]\nlisten = "127.0.0.1:{free_port()}"\n')
    env = {k: v for k, v in os.environ.items() if k not in {"JOURNAL_STREAM", "INVOCATION_ID"}}
    status_topic = topics.status_topic(PREFIX, HUB_ID)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe(status_topic, qos=1)
        messages = aiter(client.messages)
        # The hub_keys fixture made the keys, as `lockhub gateway init` would.
        process = await asyncio.create_subprocess_exec(
            *LOCKHUB,
            "run",
            "--config",
            str(config),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            online = await next_status(messages)
            assert (online["hub_id"], online["state"]) == (HUB_ID, "online")
            process.kill()  # no DISCONNECT: the broker must publish the will
            offline = await next_status(messages)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert (offline["state"], offline["reason"]) == ("offline", "connection_lost")
    assert offline["connected_at"] == online["connected_at"]

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as late:
        await late.subscribe(status_topic, qos=1)
        retained = await next_status(aiter(late.messages))
    assert retained["state"] == "offline"
