"""No plaintext code at rest: every column of every table of the cloud's database and the hub's.

Windows are made through the API (the only place a code is shown), applied by a real hub
(store, engine, sim lock, local API), opened with their codes, and the hub's records ingested
by the cloud; then every value stored on either side, and every byte of the hub's state
directory, is searched for each code, as text and inside base64url tokens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.keys import public_key_b64
from gateway.api import ApiParts, build_app
from gateway.config import load_gateway_config
from gateway.daemon import STORE_FILE, Hub, build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from tests.cloud.conftest import CLOUD_KID, HUB_ID, SettableClock

from .conftest import WINDOWS, Cloud

HUB_CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "mqtt://127.0.0.1:1"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[[locks]]
id = "front-door"
driver = "sim"
"""
# Base64url runs long enough to hide a code (6 digits take 8 characters).
TOKEN = re.compile(r"[A-Za-z0-9_-]{8,}")


def readings(value: object) -> Iterator[str]:
    """A stored value as text, and every base64url token in it decoded."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("latin-1")
    else:
        text = str(value)
    yield text
    for token in TOKEN.findall(text):
        padded = token + "=" * (-len(token) % 4)
        try:
            yield base64.urlsafe_b64decode(padded).decode("latin-1")
        except (binascii.Error, ValueError):
            continue


def leaks(values: Iterator[tuple[str, object]], codes: list[str]) -> list[str]:
    """Where (``table.column``) any code appears."""
    found = []
    for where, value in values:
        for reading in readings(value):
            found += [f"{where}: {code}" for code in codes if code in reading]
    return found


async def cloud_values(database_url: str) -> list[tuple[str, object]]:
    """Every value of every column of every table of the cloud's database."""
    engine = create_async_engine(database_url)
    values: list[tuple[str, object]] = []
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            for name in names:
                result = await conn.execute(sa.text(f'SELECT * FROM "{name}"'))  # noqa: S608 - catalog names
                columns = list(result.keys())
                for row in result:
                    values += [(f"{name}.{c}", v) for c, v in zip(columns, row, strict=True)]
    finally:
        await engine.dispose()
    assert {"windows", "records", "pods", "tasks"} <= set(names)
    return values


def hub_values(path: Path) -> list[tuple[str, object]]:
    """Every value of every column of every table of the hub's SQLite store."""
    values: list[tuple[str, object]] = []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            cursor = conn.execute(f'SELECT * FROM "{name}"')  # noqa: S608 - catalog names
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                values += [(f"{name}.{c}", v) for c, v in zip(columns, row, strict=True)]
    assert {"windows", "records"} <= set(names)
    return values


def file_values(directory: Path) -> Iterator[tuple[str, object]]:
    """The bytes of every file under ``directory`` (the store, its WAL, the key files)."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield str(path.relative_to(directory)), path.read_bytes()


@asynccontextmanager
async def hub_on(tmp_path: Path, cloud_signer: Signer, clock: SettableClock) -> AsyncIterator[Hub]:
    """A started hub (keys made by the fixture in tmp_path/hub) on the cloud's clock."""
    path = tmp_path / "gateway.toml"
    key = public_key_b64(cloud_signer.key.public_key())
    path.write_text(HUB_CONFIG.format(hub_id=HUB_ID, kid=CLOUD_KID, key=key))
    hub = await build_hub(load_gateway_config(path, env={}), wall=clock, sync_check=lambda: True)
    try:
        await start_hub(hub)
        engine = asyncio.create_task(hub.engine.run())
        try:
            yield hub
        finally:
            engine.cancel()
            await asyncio.gather(engine, return_exceptions=True)
    finally:
        await stop_hub(hub)


async def test_no_code_is_stored_in_clear_by_the_cloud_or_the_hub(
    cloud: Cloud, cloud_signer: Signer, clock: SettableClock, tmp_path: Path, database_url: str
) -> None:
    made = [
        await (await cloud.create(task_id=f"task-{n}", enforcement=kind, max_uses=None)).json()
        for n, kind in enumerate(["hub", "hub", "lock", "both"])
    ]
    codes = [window["code"] for window in made]
    assert all(code.isdigit() for code in codes)
    status, _ = await cloud.call("DELETE", f"{WINDOWS}/{made[1]['window_id']}")
    assert status == 200
    async with hub_on(tmp_path, cloud_signer, clock) as hub:
        for batch in cloud.published:
            for message in batch:
                results = await hub.intake.handle(message.payload)
                assert {r.result for r in results} == {"applied"}, results
        parts = ApiParts(hub.engine, hub.intake, hub_metrics(hub.engine), None, hub.ready)
        async with TestClient(TestServer(build_app(parts))) as local:
            unlock = "/v1/locks/front-door/unlock"
            answer = await local.post(unlock, json={"code": codes[0]})
            assert answer.status == 200  # a PoD, with its records
            answer = await local.post(unlock, json={"code": codes[1]})
            assert answer.status == 403  # revoked
        records = await hub.store.unacked(10_000)
        result = await cloud.service.store.ingest(HUB_ID, [r.envelope for r in records])
        assert result.acked == [(1, records[-1].seq)]
        task = await cloud.service.get_task("acme", "task-0")
        assert task.status == "delivered"
        store_path = hub.config.hub.state_dir
    messages = [("published", m.payload) for batch in cloud.published for m in batch]
    assert leaks(iter(messages), codes) == []
    in_cloud = await cloud_values(database_url)
    in_hub = hub_values(store_path / STORE_FILE)
    # What must have been searched: each side's hashed and sealed codes, records and PoD.
    assert {"windows.code_hash", "windows.code_sealed", "records.payload", "pods.pod_id"} <= {
        where for where, value in in_cloud if value is not None
    }
    assert {"windows.code_hash", "records.payload", "records.envelope"} <= {
        where for where, value in in_hub if value is not None
    }
    assert leaks(iter(in_cloud), codes) == []
    assert leaks(iter(in_hub), codes) == []
    assert leaks(file_values(store_path), codes) == []


def test_the_search_finds_a_code_in_clear_and_inside_base64url() -> None:
    hidden = base64.urlsafe_b64encode(b'{"code": "48151623"}').rstrip(b"=")
    stored = [("plain", '{"code": "48151623"}'), ("bytes", b"x48151623x"), ("b64", hidden)]
    assert leaks(iter(stored), ["48151623"]) == [
        "plain: 48151623", "bytes: 48151623", "b64: 48151623",
    ]  # fmt: skip
    assert leaks(iter([("other", "48151624"), ("number", 4815162)]), ["48151623"]) == []
