"""The webhooks package's one base exception and its subclasses."""

from __future__ import annotations

from cloud_sync.errors import CloudError


class WebhookError(CloudError):
    """Base of every error raised by ``cloud_sync.webhooks``."""


class WebhookSecretError(WebhookError):
    """A secret is not a usable ``whsec_`` base64 key: fix the configuration."""


class WebhookVerificationError(WebhookError):
    """An incoming webhook failed verification: answer 401 and drop it.

    ``reason`` says why (``missing_header``, ``bad_timestamp``, ``too_old``, ``too_new``,
    ``bad_signature``) for logs and metrics; never the secret or the expected MAC.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook verification failed: {reason}")
        self.reason = reason
