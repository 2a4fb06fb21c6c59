"""Carrier cost capture and FOCUS-style billing exports."""

from .errors import BillingError, InvalidAmountError
from .events import CARRIER_COST, CARRIER_COST_WEBHOOK, record_carrier_cost
from .export import EXPORT_WEBHOOK, Export, export_range

__all__ = [
    "CARRIER_COST",
    "CARRIER_COST_WEBHOOK",
    "EXPORT_WEBHOOK",
    "BillingError",
    "Export",
    "InvalidAmountError",
    "export_range",
    "record_carrier_cost",
]
