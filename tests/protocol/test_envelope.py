"""JWS envelopes: round trip, joserfc interop both ways, and every kind of tampering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

from cloud_sync.protocol import (
    MalformedError,
    SignatureError,
    Signer,
    UnknownKeyError,
    b64url_decode,
    b64url_encode,
    decode_batch,
    encode_batch,
    sign,
    verify,
)
from cloud_sync.protocol.envelope import MAX_BATCH_BYTES, MAX_BATCH_ENVELOPES

from .samples import command

Keys = dict[str, Ed25519PublicKey]
PAYLOAD = command()


def test_round_trip(cloud_signer: Signer, trusted: Keys) -> None:
    verified = verify(cloud_signer.sign(PAYLOAD), trusted)
    assert (verified.kid, verified.alg, verified.payload) == ("cloud-2026", "Ed25519", PAYLOAD)


def test_batch_round_trip(cloud_signer: Signer, trusted: Keys) -> None:
    envelopes = [cloud_signer.sign(PAYLOAD), cloud_signer.sign(b"{}")]
    decoded = decode_batch(encode_batch(envelopes))
    assert [verify(e, trusted).payload for e in decoded] == [PAYLOAD, b"{}"]


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_joserfc_signed_verifies_with_ours(alg: str, cloud_key: Ed25519PrivateKey) -> None:
    header: Any = {"protected": {"alg": alg, "kid": "cloud-2026"}}
    with pytest.warns(SecurityWarning) if alg == "EdDSA" else _no_warning():
        envelope = jws.serialize_json(header, PAYLOAD, OKPKey.import_key(cloud_key), [alg])
    verified = verify(dict(envelope), {"cloud-2026": cloud_key.public_key()})
    assert (verified.alg, verified.payload) == (alg, PAYLOAD)


def test_ours_verifies_with_joserfc(cloud_signer: Signer, cloud_key: Ed25519PrivateKey) -> None:
    envelope: Any = cloud_signer.sign(PAYLOAD)
    public = OKPKey.import_key(cloud_key.public_key())
    result = jws.deserialize_json(envelope, public, algorithms=["Ed25519"])
    assert result.payload == PAYLOAD
    assert result.headers() == {"alg": "Ed25519", "kid": "cloud-2026"}


class _no_warning:  # noqa: N801 - reads like the pytest.warns it stands in for
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _mutations(text: str) -> list[str]:
    positions = sorted(
        {0, 1, len(text) // 2, len(text) - 2, len(text) - 1, *range(0, len(text), 7)}
    )
    out = []
    for i in positions:
        swap = "B" if text[i] != "B" else "C"
        out.append(text[:i] + swap + text[i + 1 :])
    return out


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_any_changed_character_is_rejected(
    member: str, cloud_signer: Signer, trusted: Keys
) -> None:
    envelope = cloud_signer.sign(PAYLOAD)
    for mutated in _mutations(envelope[member]):
        with pytest.raises((SignatureError, MalformedError)):
            verify({**envelope, member: mutated}, trusted)


def test_wrong_key_is_rejected(cloud_signer: Signer) -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32).public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify(cloud_signer.sign(PAYLOAD), {"cloud-2026": other})


def test_kid_rewritten_to_another_trusted_key_is_rejected(
    cloud_signer: Signer, cloud_key: Ed25519PrivateKey
) -> None:
    # Both keys are trusted: only the signature can tell that the kid was changed.
    other = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
    both = {"cloud-2026": cloud_key.public_key(), "cloud-2027": other.public_key()}
    for envelope, new_kid in (
        (cloud_signer.sign(PAYLOAD), "cloud-2027"),
        (Signer("cloud-2027", other).sign(PAYLOAD), "cloud-2026"),
    ):
        assert verify(envelope, both).payload == PAYLOAD
        header = json.loads(b64url_decode(envelope["protected"]))
        assert header["kid"] != new_kid
        rewritten = b64url_encode(json.dumps({**header, "kid": new_kid}).encode())
        with pytest.raises(SignatureError, match="does not verify"):
            verify({**envelope, "protected": rewritten}, both)


def test_unknown_kid(cloud_key: Ed25519PrivateKey, trusted: Keys) -> None:
    with pytest.raises(UnknownKeyError) as info:
        verify(sign(PAYLOAD, cloud_key, "cloud-2099"), trusted)
    assert info.value.kid == "cloud-2099"


def _with_header(key: Ed25519PrivateKey, header: object) -> dict[str, str]:
    protected = b64url_encode(json.dumps(header).encode())
    payload = b64url_encode(PAYLOAD)
    signature = key.sign(f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64url_encode(signature)}


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ({"alg": "Ed25519", "kid": "cloud-2026", "crit": ["exp"]}, SignatureError),
        ({"alg": "Ed25519", "kid": "cloud-2026", "b64": False}, SignatureError),
        ({"alg": "HS256", "kid": "cloud-2026"}, SignatureError),
        ({"alg": ["Ed25519"], "kid": "cloud-2026"}, SignatureError),
        ({"alg": "none", "kid": "cloud-2026"}, SignatureError),
        ({"alg": "Ed25519"}, MalformedError),
        ({"alg": "Ed25519", "kid": ""}, MalformedError),
        ({"alg": "Ed25519", "kid": 7}, MalformedError),
        ({"alg": "Ed25519", "kid": "k" * 129}, MalformedError),
        (["Ed25519"], MalformedError),
    ],
)
def test_bad_headers(
    header: object, error: type[Exception], cloud_key: Ed25519PrivateKey, trusted: Keys
) -> None:
    with pytest.raises(error):
        verify(_with_header(cloud_key, header), trusted)


def test_header_with_extra_parameter_is_fine(cloud_key: Ed25519PrivateKey, trusted: Keys) -> None:
    envelope = _with_header(cloud_key, {"alg": "Ed25519", "kid": "cloud-2026", "typ": "JOSE"})
    assert verify(envelope, trusted).payload == PAYLOAD


def test_members(cloud_signer: Signer, trusted: Keys) -> None:
    envelope = cloud_signer.sign(PAYLOAD)
    bad: list[object] = [
        {**envelope, "header": {"kid": "x"}},
        {k: v for k, v in envelope.items() if k != "signature"},
        {**envelope, "payload": 5},
        {**envelope, "signature": None},
        [envelope],
        "envelope",
    ]
    for item in bad:
        with pytest.raises(MalformedError):
            verify(item, trusted)


def test_non_canonical_base64_is_rejected(cloud_signer: Signer, trusted: Keys) -> None:
    envelope = cloud_signer.sign(b"{}")  # "e30": the last char carries unused bits
    assert envelope["payload"] == "e30"
    for payload in ("e31", "e30=", "e3+", "e"):
        with pytest.raises(MalformedError):
            verify({**envelope, "payload": payload}, trusted)


def test_short_signature(cloud_signer: Signer, trusted: Keys) -> None:
    envelope = cloud_signer.sign(PAYLOAD)
    with pytest.raises(SignatureError, match="64 bytes"):
        verify({**envelope, "signature": b64url_encode(bytes(63))}, trusted)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{}",
        b"[1]",
        b"not json",
        b"[" + b",".join([b"{}"] * (MAX_BATCH_ENVELOPES + 1)) + b"]",
        b" " * (MAX_BATCH_BYTES + 1),
    ],
)
def test_bad_batches(data: bytes) -> None:
    with pytest.raises(MalformedError):
        decode_batch(data)
