"""Courier tokens: round trip, joserfc both ways, tampering, claims, time bounds, fuzzing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws, jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

from cloud_sync.protocol import (
    CourierTokenClaims,
    ExpiredError,
    MalformedError,
    NotYetValidError,
    ProtocolError,
    SignatureError,
    Signer,
    UnknownKeyError,
    VerifiedToken,
    WrongHubError,
    b64url_decode,
    b64url_encode,
    check_token_time,
    issue_courier_token,
    jsoncodec,
    load_command_keys,
    verify_courier_token,
)
from cloud_sync.protocol.tokens import COURIER_TYP, MAX_TOKEN_CHARS, MAX_UNIX_SECONDS

Keys = dict[str, Ed25519PublicKey]
HUB = "hub-0001"
NBF = 1_772_366_400  # 2026-03-01T12:00:00Z
EXP = NBF + 2 * 3600
HEADER = {"alg": "Ed25519", "kid": "cloud-2026", "typ": COURIER_TYP}
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
KEYS = {"cloud-2026": KEY.public_key()}
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def claims_dict(**changes: Any) -> dict[str, Any]:
    """Valid claims as a JSON object, with ``changes`` applied."""
    claims: dict[str, Any] = {
        "v": 1,
        "jti": "01JNJ4Y2B3C4D5E6F7G8H9JKMN",
        "aud": HUB,
        "sub": "c-7",
        "name": "Ada",
        "win": "win-1",
        "lock": "front-door",
        "ten": "tenant-a",
        "task": "task-1",
        "nbf": NBF,
        "exp": EXP,
        "max": 1,
    }
    claims.update(changes)
    return claims


def claims(**changes: Any) -> CourierTokenClaims:
    """Valid claims as the model."""
    return CourierTokenClaims.model_validate(claims_dict(**changes))


def raw_token(header: object, payload: bytes, key: Ed25519PrivateKey = KEY) -> str:
    """A compact JWS over any header and payload, signed correctly."""
    protected = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(payload)
    signature = key.sign(f"{protected}.{body}".encode())
    return f"{protected}.{body}.{b64url_encode(signature)}"


def parts(token: str) -> list[Any]:
    """The decoded header and claims of a token."""
    header, body, _ = token.split(".")
    return [jsoncodec.loads(b64url_decode(header)), jsoncodec.loads(b64url_decode(body))]


@pytest.fixture
def token(cloud_signer: Signer) -> str:
    """A valid token for HUB."""
    return issue_courier_token(claims(), cloud_signer)


# --- round trip and format


def test_round_trip(token: str, trusted: Keys) -> None:
    verified = verify_courier_token(token, trusted, hub_id=HUB)
    assert verified == VerifiedToken(kid="cloud-2026", claims=claims())
    assert verified.claims.not_before == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert verified.claims.expires_at == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def test_issued_form(token: str) -> None:
    assert parts(token) == [HEADER, claims_dict()]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}", token)


def test_absent_name_is_omitted_and_null_max_kept(cloud_signer: Signer, trusted: Keys) -> None:
    minimal = claims_dict(max=None)
    del minimal["name"]
    issued = issue_courier_token(CourierTokenClaims.model_validate(minimal), cloud_signer)
    assert parts(issued)[1] == minimal
    verified = verify_courier_token(issued, trusted, hub_id=HUB)
    assert (verified.claims.name, verified.claims.max) == (None, None)


def test_null_name_is_accepted(trusted: Keys) -> None:
    verified = verify_courier_token(
        raw_token(HEADER, jsoncodec.dumps(claims_dict(name=None))), trusted, hub_id=HUB
    )
    assert verified.claims.name is None


def test_docs_example_verifies() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Courier tokens") :]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", section, re.M | re.S)
    assert [tag for tag, _ in blocks] == ["json", "json", "jwt"]
    (keys_text,) = re.findall(r"^```json keys\n(.*?)^```$", text, re.M | re.S)
    verified = verify_courier_token(
        blocks[2][1].strip(), load_command_keys(json.loads(keys_text)), hub_id=HUB
    )
    assert parts(blocks[2][1].strip()) == [json.loads(blocks[0][1]), json.loads(blocks[1][1])]
    assert verified.claims.win == "win-1"


# --- interoperability


def test_joserfc_verifies_ours(token: str) -> None:
    decoded = jwt.decode(token, OKPKey.import_key(KEY.public_key()), algorithms=["Ed25519"])
    assert decoded.header == HEADER
    assert decoded.claims == claims_dict()


def test_joserfc_jwt_verifies_with_ours(trusted: Keys) -> None:
    issued = jwt.encode(HEADER, claims_dict(), OKPKey.import_key(KEY), algorithms=["Ed25519"])
    assert verify_courier_token(issued, trusted, hub_id=HUB).claims == claims()


def test_joserfc_eddsa_verifies_with_ours(trusted: Keys) -> None:
    header = {**HEADER, "alg": "EdDSA"}
    with pytest.warns(SecurityWarning):
        issued = jws.serialize_compact(
            header, jsoncodec.dumps(claims_dict()), OKPKey.import_key(KEY), ["EdDSA"]
        )
    assert verify_courier_token(issued, trusted, hub_id=HUB).kid == "cloud-2026"


# --- tampering and headers


def _mutations(text: str) -> list[str]:
    out = []
    for i in sorted({0, 1, len(text) // 2, len(text) - 2, len(text) - 1, *range(0, len(text), 9)}):
        out.append(text[:i] + ("B" if text[i] != "B" else "C") + text[i + 1 :])
    return out


@pytest.mark.parametrize("part", [0, 1, 2])
def test_any_changed_character_is_rejected(part: int, token: str, trusted: Keys) -> None:
    pieces = token.split(".")
    for mutated in _mutations(pieces[part]):
        changed = [*pieces]
        changed[part] = mutated
        with pytest.raises((SignatureError, MalformedError)):
            verify_courier_token(".".join(changed), trusted, hub_id=HUB)


def test_changed_claims_with_old_signature(token: str, trusted: Keys) -> None:
    header, _, signature = token.split(".")
    forged = b64url_encode(jsoncodec.dumps(claims_dict(exp=EXP + 3600)))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_courier_token(f"{header}.{forged}.{signature}", trusted, hub_id=HUB)


def test_kid_swapped_to_another_trusted_key(token: str) -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32).public_key()
    _, body, signature = token.split(".")
    header = b64url_encode(jsoncodec.dumps({**HEADER, "kid": "cloud-2027"}))
    keys = {"cloud-2026": KEY.public_key(), "cloud-2027": other}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_courier_token(f"{header}.{body}.{signature}", keys, hub_id=HUB)


def test_unknown_kid(trusted: Keys) -> None:
    signed = raw_token({**HEADER, "kid": "cloud-2099"}, jsoncodec.dumps(claims_dict()))
    with pytest.raises(UnknownKeyError) as info:
        verify_courier_token(signed, trusted, hub_id=HUB)
    assert info.value.kid == "cloud-2099"


def test_wrong_key(token: str) -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32).public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_courier_token(token, {"cloud-2026": other}, hub_id=HUB)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ({**HEADER, "crit": ["exp"]}, SignatureError),
        ({**HEADER, "b64": False}, SignatureError),
        ({**HEADER, "alg": "HS256"}, SignatureError),
        ({**HEADER, "alg": "none"}, SignatureError),
        ({"alg": "Ed25519", "kid": "cloud-2026"}, SignatureError),
        ({**HEADER, "typ": "JWT"}, SignatureError),
        ({**HEADER, "typ": "LOCKHUB-COURIER+JWT"}, SignatureError),
        ({**HEADER, "cty": "JWT"}, SignatureError),
        ({**HEADER, "jku": "https://attacker.invalid/keys"}, SignatureError),
        ({"alg": "Ed25519", "typ": COURIER_TYP}, MalformedError),
        ([HEADER], MalformedError),
    ],
)
def test_refused_headers(header: object, error: type[Exception], trusted: Keys) -> None:
    with pytest.raises(error):
        verify_courier_token(raw_token(header, jsoncodec.dumps(claims_dict())), trusted, hub_id=HUB)


def test_envelope_header_is_not_a_token(trusted: Keys) -> None:
    signed = raw_token({"alg": "Ed25519", "kid": "cloud-2026"}, jsoncodec.dumps(claims_dict()))
    with pytest.raises(SignatureError, match="typ"):
        verify_courier_token(signed, trusted, hub_id=HUB)


@pytest.mark.parametrize(
    "text",
    ["", ".", "..", "a.b", "a.b.c.d", "e30.e30", "e30.e30.e30.", " e30.e30.AA", "é.e30.AA"],
)
def test_malformed_structure(text: str, trusted: Keys) -> None:
    with pytest.raises(MalformedError):
        verify_courier_token(text, trusted, hub_id=HUB)


def test_not_a_string(trusted: Keys) -> None:
    not_text: Any = b"e30.e30.AA"
    with pytest.raises(MalformedError, match="string"):
        verify_courier_token(not_text, trusted, hub_id=HUB)


def test_length_limit(token: str, trusted: Keys) -> None:
    long_name = claims_dict(name="A" * 512)
    signed = raw_token(HEADER, jsoncodec.dumps(long_name))
    assert len(signed) <= MAX_TOKEN_CHARS
    assert verify_courier_token(signed, trusted, hub_id=HUB).claims.name == "A" * 512
    with pytest.raises(MalformedError, match=str(MAX_TOKEN_CHARS)):
        verify_courier_token(token + "A" * (MAX_TOKEN_CHARS + 1 - len(token)), trusted, hub_id=HUB)


def test_short_signature(token: str, trusted: Keys) -> None:
    with pytest.raises(SignatureError, match="64 bytes"):
        verify_courier_token(token.rsplit(".", 1)[0] + ".AAAA", trusted, hub_id=HUB)


# --- audience


def test_wrong_hub(token: str, trusted: Keys) -> None:
    with pytest.raises(WrongHubError) as info:
        verify_courier_token(token, trusted, hub_id="hub-0002")
    assert info.value.reason == "wrong_hub"


def test_signed_by_a_hub_key() -> None:
    hub_signed = issue_courier_token(claims(), Signer(HUB, KEY))
    with pytest.raises(WrongHubError, match="hub key"):
        verify_courier_token(hub_signed, {HUB: KEY.public_key()}, hub_id=HUB)


# --- claims


@pytest.mark.parametrize(
    "changes",
    [
        {"v": 2},
        {"v": True},
        {"jti": "not-a-ulid"},
        {"aud": "hub/0001"},
        {"sub": ""},
        {"win": "win 1"},
        {"lock": None},
        {"ten": 7},
        {"task": "t" * 129},
        {"name": "A" * 513},
        {"nbf": "1772366400"},
        {"nbf": float(NBF)},
        {"nbf": -1},
        {"exp": MAX_UNIX_SECONDS + 1},
        {"exp": NBF},
        {"exp": NBF - 1},
        {"exp": NBF + 7 * 86400 + 1},
        {"max": 0},
        {"max": True},
        {"max": 1_000_001},
        {"iat": NBF},
    ],
)
def test_refused_claims(changes: dict[str, Any], trusted: Keys) -> None:
    signed = raw_token(HEADER, jsoncodec.dumps(claims_dict(**changes)))
    with pytest.raises(MalformedError):
        verify_courier_token(signed, trusted, hub_id=HUB)


@pytest.mark.parametrize("missing", ["v", "jti", "aud", "sub", "win", "lock", "max", "exp"])
def test_missing_claim(missing: str, trusted: Keys) -> None:
    incomplete = claims_dict()
    del incomplete[missing]
    with pytest.raises(MalformedError, match=missing):
        verify_courier_token(raw_token(HEADER, jsoncodec.dumps(incomplete)), trusted, hub_id=HUB)


@pytest.mark.parametrize("payload", [b"[]", b"null", b"{", b'{"v":1,"v":1}', b"\xff"])
def test_payload_not_a_claims_object(payload: bytes, trusted: Keys) -> None:
    with pytest.raises(MalformedError):
        verify_courier_token(raw_token(HEADER, payload), trusted, hub_id=HUB)


def test_longest_lifetime_and_extreme_times_are_accepted(trusted: Keys) -> None:
    week = claims_dict(exp=NBF + 7 * 86400)
    assert verify_courier_token(raw_token(HEADER, jsoncodec.dumps(week)), trusted, hub_id=HUB)
    last = claims(nbf=MAX_UNIX_SECONDS - 1, exp=MAX_UNIX_SECONDS)
    assert last.expires_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert claims(nbf=0, exp=1).not_before == datetime(1970, 1, 1, tzinfo=UTC)


# --- time

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("now", "leeway", "error"),
    [
        (START - TICK, 0, NotYetValidError),
        (START, 0, None),
        (END - TICK, 0, None),
        (END, 0, ExpiredError),
        (START - timedelta(seconds=60), 60, None),
        (START - timedelta(seconds=60) - TICK, 60, NotYetValidError),
        (END + timedelta(seconds=60) - TICK, 60, None),
        (END + timedelta(seconds=60), 60, ExpiredError),
    ],
)
def test_time_boundaries(now: datetime, leeway: int, error: type[Exception] | None) -> None:
    if error is None:
        check_token_time(claims(), now, leeway)
    else:
        with pytest.raises(error):
            check_token_time(claims(), now, leeway)


def test_time_reasons_and_other_zones() -> None:
    plus_two = timezone(timedelta(hours=2))  # instants are compared, not wall readings
    with pytest.raises(NotYetValidError) as early:
        check_token_time(claims(), START.astimezone(plus_two) - TICK, 0)
    assert early.value.reason == "not_yet_valid"
    with pytest.raises(ExpiredError) as late:
        check_token_time(claims(), END.astimezone(plus_two), 0)
    assert late.value.reason == "expired"


def test_time_extremes_do_not_overflow() -> None:
    huge = 10**12
    check_token_time(claims(nbf=0, exp=1), datetime(1970, 1, 1, tzinfo=UTC), huge)
    last = claims(nbf=MAX_UNIX_SECONDS - 1, exp=MAX_UNIX_SECONDS)
    check_token_time(last, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), huge)


def test_time_needs_aware_now_and_no_negative_leeway() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_token_time(claims(), datetime(2026, 3, 1, 12, 30), 0)
    with pytest.raises(ValueError, match="negative"):
        check_token_time(claims(), START, -1)


# --- fuzzing: a token or a ProtocolError, nothing else

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
# Claims are written with our strict encoder, which refuses infinities; raw payloads above
# still carry them (json.dumps writes "Infinity") to fuzz the parser.
FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
CLAIM_VALUES = st.one_of(
    FINITE_JSON,
    st.integers(min_value=NBF - 10, max_value=NBF + 10**6),
    st.sampled_from(["win-1", HUB]),
)


def _outcome(text: str) -> None:
    try:
        result = verify_courier_token(text, KEYS, hub_id=HUB)
    except ProtocolError:
        return
    assert isinstance(result, VerifiedToken)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _outcome(text)


@FUZZ
@given(st.text(alphabet="AZaz09-_.=e3J", max_size=300))
def test_any_token_shaped_text(text: str) -> None:
    _outcome(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(claims_dict())), CLAIM_VALUES, max_size=13))
def test_arbitrary_claims_on_a_valid_signature(changes: dict[str, Any]) -> None:
    _outcome(raw_token(HEADER, jsoncodec.dumps(claims_dict(**changes))))


@FUZZ
@given(JSON, st.dictionaries(st.text(max_size=5), JSON, max_size=4))
def test_arbitrary_payload_and_header(payload: object, extra: dict[str, Any]) -> None:
    _outcome(raw_token(HEADER, json.dumps(payload).encode()))
    _outcome(raw_token({**HEADER, **extra}, jsoncodec.dumps(claims_dict())))
