"""Courier tokens: JWTs (RFC 7519) in JWS compact form (RFC 7515 7.1), Ed25519, verified offline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import Field, TypeAdapter, model_validator

from . import jsoncodec
from .b64 import b64url_encode
from .envelope import ALG, Keys, Signer, parse_header, sign_parts, verify_parts
from .errors import ExpiredError, MalformedError, NotYetValidError, SignatureError, WrongHubError
from .fields import PROTOCOL_VERSION, HubId, Ident, Text, Ulid, WireModel
from .payload import decode

# Explicit typing (RFC 8725 3.11): an envelope or another JWT signed by the same key never
# passes for a courier token, nor a token for an envelope.
COURIER_TYP = "lockhub-courier+jwt"
HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
# Ours are about 450 characters; 2048 still fits one QR code (version 40 holds 2953 bytes)
# and bounds the work a door-side scanner can make the hub do.
MAX_TOKEN_CHARS = 2048
# A token covers one delivery; a week spans a multi-day window and bounds a leaked token.
MAX_TOKEN_LIFETIME = timedelta(days=7)
# 9999-12-31T23:59:59Z: every accepted nbf/exp converts to a datetime.
MAX_UNIX_SECONDS = 253_402_300_799
# The same bound as window.upsert's max_uses.
MAX_USES = 1_000_000

UnixSeconds = Annotated[int, Field(ge=0, le=MAX_UNIX_SECONDS)]


class CourierTokenClaims(WireModel):
    """The claims of a courier token; unknown claims are refused."""

    v: Annotated[int, Field(ge=PROTOCOL_VERSION, le=PROTOCOL_VERSION)]
    jti: Ulid
    aud: HubId
    sub: Ident
    name: Text | None = None
    win: Ident
    lock: Ident
    ten: Ident
    task: Ident
    nbf: UnixSeconds
    exp: UnixSeconds
    max: Annotated[int, Field(ge=1, le=MAX_USES)] | None

    @model_validator(mode="after")
    def _check_lifetime(self) -> Self:
        if self.exp <= self.nbf:
            raise ValueError("exp must be after nbf")
        if self.exp - self.nbf > MAX_TOKEN_LIFETIME.total_seconds():
            raise ValueError(f"a token lives at most {MAX_TOKEN_LIFETIME.days} days")
        return self

    @property
    def not_before(self) -> datetime:
        """``nbf`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.nbf, UTC)

    @property
    def expires_at(self) -> datetime:
        """``exp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.exp, UTC)


_CLAIMS: TypeAdapter[CourierTokenClaims] = TypeAdapter(CourierTokenClaims)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A courier token whose signature, header and claims checked out, for this hub."""

    kid: str
    claims: CourierTokenClaims


def issue_courier_token(claims: CourierTokenClaims, signer: Signer) -> str:
    """Sign ``claims`` as a compact JWS under ``signer``'s kid."""
    members: dict[str, Any] = claims.model_dump(mode="json", exclude_none=True)
    members["max"] = claims.max  # null is meaningful (no use limit), so it stays explicit
    header = {"alg": ALG, "kid": signer.kid, "typ": COURIER_TYP}
    protected = b64url_encode(jsoncodec.dumps(header))
    return ".".join(sign_parts(protected, jsoncodec.dumps(members), signer.key))


def _split(token: str) -> list[str]:
    if not isinstance(token, str):
        raise MalformedError("a token is a string")
    if len(token) > MAX_TOKEN_CHARS:
        raise MalformedError(f"a token is at most {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedError("a token is three base64url parts joined by dots")
    return parts


def _check_header(header: Mapping[str, Any]) -> None:
    if header.get("typ") != COURIER_TYP:
        raise SignatureError(f"token typ must be {COURIER_TYP!r}")
    if set(header) != HEADER_MEMBERS:
        raise SignatureError("token header has exactly alg, kid and typ")


def verify_courier_token(token: str, keys: Keys, *, hub_id: str) -> VerifiedToken:
    """Verify a token for ``hub_id`` against trusted ``keys``; raise only ProtocolError."""
    protected, encoded_claims, signature = _split(token)
    _, kid, header = parse_header(protected)
    _check_header(header)
    claims = decode(_CLAIMS, verify_parts(protected, encoded_claims, signature, kid, keys))
    if kid == claims.aud:
        # A hub signs with kid = hub_id; its key must never pass for a cloud key.
        raise WrongHubError(f"token signed by hub key {kid!r}")
    if claims.aud != hub_id:
        raise WrongHubError(f"token is for hub {claims.aud!r}, not {hub_id!r}")
    return VerifiedToken(kid=kid, claims=claims)


def check_token_time(claims: CourierTokenClaims, now: datetime, leeway_seconds: int) -> None:
    """Raise unless ``nbf - leeway <= now < exp + leeway`` (NotYetValidError, ExpiredError)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if leeway_seconds < 0:
        raise ValueError("leeway_seconds must not be negative")
    # Plain numbers: datetime arithmetic near year 1 or 9999 would overflow.
    moment = now.timestamp()
    if moment < claims.nbf - leeway_seconds:
        raise NotYetValidError(f"token {claims.jti} is valid from {claims.not_before.isoformat()}")
    if moment >= claims.exp + leeway_seconds:
        raise ExpiredError(f"token {claims.jti} expired at {claims.expires_at.isoformat()}")
