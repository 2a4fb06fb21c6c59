"""Fixtures for the protocol tests: fixed signing keys so failures reproduce."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud_sync.protocol import Signer


@pytest.fixture
def cloud_key() -> Ed25519PrivateKey:
    """The cloud's command-signing key."""
    return Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)


@pytest.fixture
def cloud_signer(cloud_key: Ed25519PrivateKey) -> Signer:
    """Signs as kid ``cloud-2026``."""
    return Signer("cloud-2026", cloud_key)


@pytest.fixture
def trusted(cloud_key: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    """The hub's ``command_keys``."""
    return {"cloud-2026": cloud_key.public_key()}
