"""API keys and command sequence numbers."""

from __future__ import annotations

import asyncio
import hashlib

from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore

from .conftest import CLOUD_KID, TENANT


async def test_command_seqs_are_unique_under_concurrency(store: CloudStore) -> None:
    ranges = await asyncio.gather(*(store.allocate_command_seqs(CLOUD_KID) for _ in range(50)))
    assert sorted(r[0] for r in ranges) == list(range(1, 51))
    block = await store.allocate_command_seqs(CLOUD_KID, 3)
    assert list(block) == [51, 52, 53]
    assert list(await store.allocate_command_seqs("cloud-2027")) == [1]


async def test_api_keys_authenticate_their_tenant_until_revoked(service: CloudService) -> None:
    key = await service.create_api_key(TENANT)
    other = await service.create_api_key("tenant-b")
    scheme, prefix, secret = key.split("_", 2)
    assert scheme == "lhk"
    assert len(secret) >= 43
    assert await service.authenticate(key) == TENANT
    assert await service.authenticate(other) == "tenant-b"
    stored = await service.store.api_key(prefix)
    assert stored is not None
    assert secret not in stored.key_hash
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert [k.prefix for k in await service.store.list_api_keys(TENANT)] == [prefix]
    for wrong in (
        key[:-1] + ("A" if key[-1] != "A" else "B"),
        f"lhk_{prefix}_",
        f"lhk_ffffffffffff_{secret}",
        f"xyz_{prefix}_{secret}",
        "",
        "lhk",
    ):
        assert await service.authenticate(wrong) is None, wrong
    assert await service.revoke_api_key(prefix) is True
    assert await service.revoke_api_key(prefix) is False
    assert await service.authenticate(key) is None
    assert await service.authenticate(other) == "tenant-b"
