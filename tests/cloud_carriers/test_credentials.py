"""Sealed partner credentials: AES-256-GCM, bound to tenant and partner, key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from cloud_sync.carriers.breaker import BreakerBoard
from cloud_sync.carriers.credentials import KeyRing, generate_key, key_id
from cloud_sync.carriers.errors import CredentialError
from cloud_sync.carriers.registry import CarrierRegistry
from cloud_sync.store.carriers import CarrierStore

from .conftest import TARIFF, section

SECRET = {"client_id": "cid", "client_secret": "s3cr3t-value"}


def ring(*kids: str, active: str | None = None) -> KeyRing:
    keys = {kid: bytes([n]) * 32 for n, kid in enumerate(kids, 1)}
    return KeyRing(keys, active or kids[-1])


def test_seal_and_open() -> None:
    keys = ring("k1")
    sealed = keys.seal(SECRET, tenant="acme", partner_id="p1")
    assert sealed.startswith("v1:k1:")
    assert "s3cr3t" not in sealed
    assert key_id(sealed) == "k1"
    assert keys.open(sealed, tenant="acme", partner_id="p1") == SECRET
    assert sealed != keys.seal(SECRET, tenant="acme", partner_id="p1")  # fresh nonce
    assert "s3cr3t" not in repr(keys)
    assert "\\x01" not in repr(keys)


@pytest.mark.parametrize("plain", [{"client_id": 7}, {"nested": {"a": "b"}}])
def test_a_seal_that_opens_to_other_than_strings_is_refused(plain: dict[str, object]) -> None:
    keys = ring("k1")
    # Only a holder of the key could seal this: opened, it is still checked.
    sealed = keys.seal(plain, tenant="acme", partner_id="p1")  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match="not a string map"):
        keys.open(sealed, tenant="acme", partner_id="p1")


@pytest.mark.parametrize(("tenant", "partner"), [("other", "p1"), ("acme", "p2")])
def test_a_seal_opens_only_for_its_tenant_and_partner(tenant: str, partner: str) -> None:
    keys = ring("k1")
    sealed = keys.seal(SECRET, tenant="acme", partner_id="p1")
    with pytest.raises(CredentialError, match="do not open"):
        keys.open(sealed, tenant=tenant, partner_id=partner)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: s.replace("v1:", "v2:"), "not a v1"),
        (lambda s: s + ":x", "not a v1"),
        (lambda s: s.replace("k1", "k9"), "lacks"),
        (lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1], "do not open"),
        (lambda s: s[:-1] + "!", "base64url"),
    ],
)
def test_tampering_is_refused(mangle: object, message: str) -> None:
    keys = ring("k1")
    sealed = keys.seal(SECRET, tenant="acme", partner_id="p1")
    with pytest.raises(CredentialError, match=message):
        keys.open(mangle(sealed), tenant="acme", partner_id="p1")  # type: ignore[operator]


def test_rings_from_text_file_and_section(tmp_path: Path) -> None:
    one, two = generate_key(), generate_key()
    parsed = KeyRing.parse(f"k1:{one}, k2:{two}", "k2")
    assert set(parsed.keys) == {"k1", "k2"}
    assert parsed.active == "k2"
    path = tmp_path / "keys.toml"
    path.write_text(f'active = "k1"\n[keys]\nk1 = "{one}"\n')
    assert KeyRing.load(path).keys["k1"] == parsed.keys["k1"]
    from_env = section(keys=SecretStr(f"k1:{one}"), active_key="k1")
    assert KeyRing.from_section(from_env).active == "k1"
    assert KeyRing.from_section(section(key_file=path)).active == "k1"
    with pytest.raises(CredentialError, match="no carrier key ring"):
        KeyRing.from_section(section())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: KeyRing({"k1": b"short"}, "k1"), "32 bytes"),
        (lambda: KeyRing({"k 1": bytes(32)}, "k 1"), "1-64"),
        (lambda: KeyRing({"k1": bytes(32)}, "k2"), "not in the key ring"),
        (lambda: KeyRing.parse("k1=abc", "k1"), "id:base64url"),
    ],
)
def test_bad_rings_are_refused(build: object, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        build()  # type: ignore[operator]


def test_bad_key_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("active = 1\n")
    (tmp_path / "b.toml").write_text("nonsense [")
    for name in ("a.toml", "b.toml", "missing.toml"):
        with pytest.raises(CredentialError):
            KeyRing.load(tmp_path / name)


async def test_rotation_reseals_every_partner_under_the_active_key(store: CarrierStore) -> None:
    old = ring("k1")
    registry = CarrierRegistry(store, old, BreakerBoard(3, 60, 30))
    made = [
        await registry.create(
            "acme", "tariff", "t1", credentials=SECRET, settings={"table": TARIFF}
        ),
        await registry.create("beta", "tariff", "t2", credentials={}, settings={"table": TARIFF}),
    ]
    await registry.delete("beta", made[1].partner_id)  # erased credentials: nothing to reseal
    registry.ring = ring("k1", "k2", active="k2")
    assert await registry.rotate() == 1
    assert await registry.rotate() == 0  # already under k2
    row = await registry.get("acme", made[0].partner_id)
    assert row.credentials_kid == "k2"
    assert key_id(row.credentials or "") == "k2"
    only_new = KeyRing({"k2": ring("k1", "k2").keys["k2"]}, "k2")
    assert only_new.open(row.credentials or "", tenant="acme", partner_id=row.partner_id) == SECRET
    registry.ring = only_new  # k1 retired: the connector still builds
    assert registry.connector(row).provider_code == "tariff"
