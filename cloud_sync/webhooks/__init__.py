"""Outgoing webhooks per the Standard Webhooks spec, and verification of incoming ones."""

from .delivery import DeliveryWorker
from .errors import WebhookError, WebhookSecretError, WebhookVerificationError
from .outbox import RETRY_SCHEDULE, TEST_EVENT, enqueue
from .signing import generate_secret, webhook_headers
from .verify import STANDARD_WEBHOOKS, Scheme, verify_standard

__all__ = [
    "RETRY_SCHEDULE",
    "STANDARD_WEBHOOKS",
    "TEST_EVENT",
    "DeliveryWorker",
    "Scheme",
    "WebhookError",
    "WebhookSecretError",
    "WebhookVerificationError",
    "enqueue",
    "generate_secret",
    "verify_standard",
    "webhook_headers",
]
