"""HPKE code sealing and the raw public key loaders."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol import (
    MalformedError,
    SealError,
    b64url_decode,
    b64url_encode,
    check_code,
    load_command_keys,
    load_ed25519_public,
    load_x25519_public,
    open_code,
    public_key_b64,
    seal_code,
)
from cloud_sync.protocol.sealing import ENC_BYTES, TAG_BYTES

KEY = X25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@pytest.mark.parametrize("code", ["123456", "0123456789", "A" * 16, "aZ09_-" * 21 + "xy"])
def test_round_trip_and_layout(code: str) -> None:
    sealed = seal_code(code, "win-1", KEY.public_key())
    assert open_code(sealed, "win-1", KEY) == code
    assert len(b64url_decode(sealed)) == ENC_BYTES + len(code) + TAG_BYTES
    assert sealed != seal_code(code, "win-1", KEY.public_key())  # fresh enc every time


def test_wrong_window_or_key() -> None:
    sealed = seal_code("123456", "win-1", KEY.public_key())
    with pytest.raises(SealError):
        open_code(sealed, "win-2", KEY)
    with pytest.raises(SealError):
        open_code(sealed, "win-1", OTHER)


def test_every_tampered_byte_fails() -> None:
    raw = b64url_decode(seal_code("123456", "win-1", KEY.public_key()))
    for i in range(len(raw)):
        tampered = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(SealError):
            open_code(b64url_encode(tampered), "win-1", KEY)


@pytest.mark.parametrize(
    "sealed", ["", "not base64!", "AAA=", b64url_encode(bytes(53)), b64url_encode(bytes(177))]
)
def test_bad_sealed_forms(sealed: str) -> None:
    with pytest.raises(SealError):
        open_code(sealed, "win-1", KEY)


@pytest.mark.parametrize("code", ["12345", "12345678901", "12345a", "A" * 15, "A" * 129, "ä" * 20])
def test_bad_codes(code: str) -> None:
    with pytest.raises(MalformedError):
        check_code(code)
    with pytest.raises(MalformedError):
        seal_code(code, "win-1", KEY.public_key())


def test_opened_plaintext_is_checked() -> None:
    from cloud_sync.protocol.sealing import INFO_PREFIX, SUITE  # noqa: PLC0415

    for plain in (b"12345678901", "é".encode() * 4):
        sealed = b64url_encode(SUITE.encrypt(plain, KEY.public_key(), info=INFO_PREFIX + b"w"))
        with pytest.raises(MalformedError):
            open_code(sealed, "w", KEY)


@pytest.mark.parametrize("window_id", ["", "a b", "é", "x" * 129])
def test_bad_window_ids(window_id: str) -> None:
    with pytest.raises(MalformedError):
        seal_code("123456", window_id, KEY.public_key())


def test_key_loaders_round_trip() -> None:
    signing = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32).public_key()
    assert load_ed25519_public(public_key_b64(signing)) == signing
    assert load_x25519_public(public_key_b64(KEY.public_key())) == KEY.public_key()
    assert load_command_keys({"cloud-2026": public_key_b64(signing)}) == {"cloud-2026": signing}


@pytest.mark.parametrize("text", ["", "AAAA", b64url_encode(bytes(33)), "+" * 43])
def test_key_loaders_reject(text: str) -> None:
    with pytest.raises(MalformedError):
        load_ed25519_public(text)
    with pytest.raises(MalformedError):
        load_x25519_public(text)
    with pytest.raises(MalformedError, match="cloud-2026"):
        load_command_keys({"cloud-2026": text})


def test_command_keys_need_sane_kids() -> None:
    key = public_key_b64(KEY.public_key())
    for kid in ("", "k" * 129):
        with pytest.raises(MalformedError):
            load_command_keys({kid: key})
