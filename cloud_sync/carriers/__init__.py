"""Carriers: the connector contract, partners, resilience, rate shopping and jobs.

Only the contract and the errors are re-exported here, so a connector module importing
``cloud_sync.carriers.connector`` pulls in nothing else.
"""

from .connector import (
    Address,
    CarrierJob,
    CarrierJobRef,
    Connector,
    Cost,
    JobRequest,
    JobStatus,
    Label,
    Manifest,
    Parcel,
    Proof,
    Quote,
    QuoteRequest,
)
from .errors import (
    BreakerOpenError,
    CarrierAuthError,
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
    RateLimitedError,
    TransientCarrierError,
)

__all__ = [
    "Address",
    "BreakerOpenError",
    "CarrierAuthError",
    "CarrierError",
    "CarrierJob",
    "CarrierJobRef",
    "CarrierRejectedError",
    "CarrierTimeoutError",
    "Connector",
    "Cost",
    "JobRequest",
    "JobStatus",
    "Label",
    "Manifest",
    "Parcel",
    "Proof",
    "Quote",
    "QuoteRequest",
    "RateLimitedError",
    "TransientCarrierError",
]
