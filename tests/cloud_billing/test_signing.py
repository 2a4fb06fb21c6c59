"""Standard Webhooks signing and verification, checked against the reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError_

from cloud_sync.webhooks import signing, verify
from cloud_sync.webhooks.errors import (
    WebhookError,
    WebhookSecretError,
    WebhookVerificationError,
)

BODY = b'{"type":"webhook.test","timestamp":"2026-03-01T12:00:00.000Z","data":{"a":"\xc3\xa9"}}'
MSG_ID = "msg_01J0000000000000000000000"


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first.startswith("whsec_")
    assert first != second
    assert len(signing.decode_secret(first)) == 32


def test_the_reference_library_verifies_our_signature() -> None:
    secret = signing.generate_secret()
    headers = signing.webhook_headers([secret], MSG_ID, stamp(now()), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers)["data"] == {"a": "é"}


def test_during_rotation_both_secrets_verify_and_no_other() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    headers = signing.webhook_headers([new, old], MSG_ID, stamp(now()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(ReferenceError_):
        Webhook(signing.generate_secret()).verify(BODY, headers)


def test_we_verify_what_the_reference_library_signs() -> None:
    secret = signing.generate_secret()
    moment = now()
    signature = Webhook(secret).sign(MSG_ID, moment, BODY.decode())
    headers = {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(stamp(moment)),
               "Webhook-Signature": f"v2,zzz {signature}"}  # fmt: skip
    verify.verify_standard([secret], BODY, headers, now=moment)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("c2VjcmV0", "starts with"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24 to 64"),
    ],
)
def test_bad_secrets_are_refused(secret: str, problem: str) -> None:
    with pytest.raises(WebhookSecretError, match=problem) as caught:
        signing.decode_secret(secret)
    assert isinstance(caught.value, WebhookError)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(WebhookSecretError):
        signing.signature_header([], MSG_ID, 0, BODY)


class TestWebhooksIn:
    """Verification of incoming webhooks: raw body, constant-time compare, tolerance."""

    secret = signing.generate_secret()

    def headers(self, moment: datetime, body: bytes = BODY, secret: str = "") -> dict[str, str]:
        return signing.webhook_headers([secret or self.secret], MSG_ID, stamp(moment), body)

    def reason(self, body: bytes, headers: dict[str, str], at: datetime) -> str:
        with pytest.raises(WebhookVerificationError) as caught:
            verify.verify_standard([self.secret], body, headers, now=at)
        return caught.value.reason

    def test_a_good_request_passes(self) -> None:
        moment = now()
        verify.verify_standard([self.secret], BODY, self.headers(moment), now=moment)

    def test_a_tampered_body_is_rejected(self) -> None:
        moment = now()
        tampered = BODY.replace(b"webhook.test", b"webhook.tess")
        assert self.reason(tampered, self.headers(moment), moment) == "bad_signature"

    def test_a_wrong_secret_is_rejected(self) -> None:
        moment = now()
        headers = self.headers(moment, secret=signing.generate_secret())
        assert self.reason(BODY, headers, moment) == "bad_signature"

    def test_an_old_or_future_timestamp_is_rejected(self) -> None:
        moment = now()
        old = self.headers(moment - timedelta(minutes=5, seconds=2))
        assert self.reason(BODY, old, moment) == "too_old"
        ahead = self.headers(moment + timedelta(minutes=5, seconds=2))
        assert self.reason(BODY, ahead, moment) == "too_new"
        # Inside the tolerance either way is fine.
        verify.verify_standard(
            [self.secret], BODY, self.headers(moment - timedelta(minutes=4)), now=moment
        )

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"webhook-timestamp": "12.5"}, "bad_timestamp"),
            ({"webhook-timestamp": "-1"}, "bad_timestamp"),
            ({"webhook-id": ""}, "missing_header"),
            ({"webhook-signature": "v1,!!!notbase64"}, "bad_signature"),
            ({"webhook-signature": "v1," + "A" * 5000}, "bad_signature"),
            ({"webhook-signature": "v1"}, "bad_signature"),
        ],
    )
    def test_malformed_headers_are_rejected(self, change: dict[str, str], reason: str) -> None:
        moment = now()
        headers = self.headers(moment) | change
        assert self.reason(BODY, headers, moment) == reason

    def test_the_message_id_is_part_of_what_is_signed(self) -> None:
        moment = now()
        headers = self.headers(moment) | {"webhook-id": "msg_other"}
        assert self.reason(BODY, headers, moment) == "bad_signature"


def test_a_vendor_scheme_with_a_hex_body_signature() -> None:
    """Uber Direct's shape: HMAC-SHA256 of the raw body, hex, one header, no timestamp."""
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    key = b"uber-signing-key"
    scheme = verify.Scheme(signature_header="X-Postmates-Signature")
    good = hmac.new(key, BODY, hashlib.sha256).hexdigest()
    verify.verify(scheme, [key], BODY, {"x-postmates-signature": good}, now=now())
    with pytest.raises(WebhookVerificationError, match="bad_signature"):
        verify.verify(scheme, [key], BODY + b" ", {"X-Postmates-Signature": good}, now=now())
    with pytest.raises(WebhookVerificationError, match="bad_signature"):
        verify.verify(scheme, [key], BODY, {"X-Postmates-Signature": "zz" + good}, now=now())
    with pytest.raises(WebhookVerificationError, match="missing_header"):
        verify.verify(scheme, [key], BODY, {}, now=now())


def test_a_scheme_with_a_timestamp_enforces_the_tolerance() -> None:
    key = b"k" * 32
    scheme = verify.Scheme(
        signature_header="x-sig", timestamp_header="x-ts", tolerance=timedelta(seconds=30)
    )
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    good = hmac.new(key, BODY, hashlib.sha256).hexdigest()
    moment = now()
    verify.verify(scheme, [key], BODY, {"x-sig": good, "x-ts": str(stamp(moment))}, now=moment)
    old = str(stamp(moment) - 31)
    with pytest.raises(WebhookVerificationError, match="too_old"):
        verify.verify(scheme, [key], BODY, {"x-sig": good, "x-ts": old}, now=moment)
