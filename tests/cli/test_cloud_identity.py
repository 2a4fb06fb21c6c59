"""The cloud's command-signing key: made once, 0600, refused when exposed or damaged."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.identity import (
    SIGNING_KEY_FILE,
    IdentityError,
    IdentityMissingError,
    init_cloud_identity,
    load_cloud_identity,
)
from cloud_sync.protocol import envelope
from cloud_sync.protocol.b64 import b64url_decode


def test_init_creates_the_key_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, created = init_cloud_identity(state, "cloud-1")
    assert created
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / SIGNING_KEY_FILE).stat().st_mode) == 0o600
    second, created_again = init_cloud_identity(state, "cloud-1")
    assert not created_again
    assert second.signing_public == first.signing_public


def test_signer_output_verifies_with_the_published_key(tmp_path: Path) -> None:
    keys, _ = init_cloud_identity(tmp_path, "cloud-1")
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(keys.signing_public))
    verified = envelope.verify(keys.signer().sign(b"{}"), {"cloud-1": public})
    assert verified.kid == "cloud-1"


def test_load_before_init_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(IdentityMissingError, match=r"run `lockhub cloud init --config FILE`"):
        load_cloud_identity(tmp_path, "cloud-1")


def test_exposed_key_is_refused(tmp_path: Path) -> None:
    init_cloud_identity(tmp_path, "k")
    (tmp_path / SIGNING_KEY_FILE).chmod(0o640)
    with pytest.raises(IdentityError, match=r"mode 0640\); run `chmod 600"):
        load_cloud_identity(tmp_path, "k")


def test_damaged_key_is_refused(tmp_path: Path) -> None:
    init_cloud_identity(tmp_path, "k")
    (tmp_path / SIGNING_KEY_FILE).write_bytes(b"short")
    with pytest.raises(IdentityError, match="is damaged"):
        load_cloud_identity(tmp_path, "k")


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    init_cloud_identity(tmp_path / "real", "k")
    (tmp_path / SIGNING_KEY_FILE).symlink_to(tmp_path / "real" / SIGNING_KEY_FILE)
    with pytest.raises(IdentityError, match="cannot read key file"):
        load_cloud_identity(tmp_path, "k")


def test_unusable_state_dir_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(IdentityError, match="cannot create the signing key"):
        init_cloud_identity(tmp_path / "file" / "state", "k")
