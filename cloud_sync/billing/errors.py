"""The billing package's one base exception."""

from __future__ import annotations

from cloud_sync.errors import CloudError, InvalidRequestError


class BillingError(CloudError):
    """Base of every error raised by ``cloud_sync.billing``."""


class InvalidAmountError(BillingError, InvalidRequestError):
    """A cost cannot be stored as given (currency, components): reject it."""
