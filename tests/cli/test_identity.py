"""Hub keys: created once with 0600/0700, never overwritten, refused when exposed or damaged."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from cloud_sync.protocol.b64 import b64url_decode
from gateway.errors import GatewayError, IdentityError, IdentityMissingError
from gateway.identity import KEY_FILES, init_identity, load_identity
from gateway.keyfile import write_new_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_private_dir_and_key_files(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    keys, created = init_identity(state)
    assert created
    assert mode(state) == 0o700
    assert sorted(p.name for p in state.iterdir()) == sorted(KEY_FILES)
    for name in KEY_FILES:
        assert mode(state / name) == 0o600
        assert (state / name).stat().st_size == 32
    assert len(keys.code_secret) == 32


def test_init_twice_keeps_the_keys(tmp_path: Path) -> None:
    first, _ = init_identity(tmp_path)
    second, created = init_identity(tmp_path)
    assert not created
    assert (second.signing_public, second.sealing_public) == (
        first.signing_public,
        first.sealing_public,
    )
    assert second.code_secret == first.code_secret


def test_init_completes_a_partial_identity(tmp_path: Path) -> None:
    first, _ = init_identity(tmp_path)
    (tmp_path / "sealing.key").unlink()
    second, created = init_identity(tmp_path)
    assert created
    assert second.signing_public == first.signing_public
    assert second.sealing_public != first.sealing_public


def test_public_keys_are_base64url_raw_and_match(tmp_path: Path) -> None:
    keys, _ = init_identity(tmp_path)
    verifier = Ed25519PublicKey.from_public_bytes(b64url_decode(keys.signing_public))
    verifier.verify(keys.signing.sign(b"record"), b"record")
    peer = X25519PrivateKey.generate()
    sealing = X25519PublicKey.from_public_bytes(b64url_decode(keys.sealing_public))
    assert peer.exchange(sealing) == keys.sealing.exchange(peer.public_key())


def test_load_before_init_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(IdentityMissingError, match=r"run `lockhub gateway init --config FILE`"):
        load_identity(tmp_path)


def test_exposed_key_file_is_refused(tmp_path: Path) -> None:
    init_identity(tmp_path)
    (tmp_path / "signing.key").chmod(0o644)
    with pytest.raises(IdentityError, match=r"mode 0644\); run `chmod 600 .*signing.key`"):
        load_identity(tmp_path)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_damaged_key_file_is_refused(tmp_path: Path, size: int) -> None:
    init_identity(tmp_path)
    (tmp_path / "code-hmac.key").write_bytes(b"x" * size)
    with pytest.raises(IdentityError, match="is damaged"):
        load_identity(tmp_path)


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    init_identity(tmp_path / "real")
    state = tmp_path / "state"
    state.mkdir()
    for name in KEY_FILES:
        (state / name).symlink_to(tmp_path / "real" / name)
    with pytest.raises(IdentityError, match="cannot read key file"):
        load_identity(state)


def test_unusable_state_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(GatewayError, match="cannot create hub keys in"):
        init_identity(blocker / "state")


def test_secret_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "k"
    assert write_new_secret(target, b"1" * 32)
    assert not write_new_secret(target, b"2" * 32)
    assert target.read_bytes() == b"1" * 32
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind
