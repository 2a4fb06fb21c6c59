"""Integer minor units to decimal strings, by each ISO 4217 currency's exponent (pure)."""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import InvalidAmountError

_CODE = re.compile(r"[A-Z]{3}")
# ISO 4217 minor units that are not 2 (list of codes, 2024 edition). Every other active
# code has two decimals.
EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
DEFAULT_EXPONENT = 2


def check_currency(code: str) -> str:
    """``code`` if it is three upper-case letters; else InvalidAmountError."""
    if not _CODE.fullmatch(code):
        raise InvalidAmountError("currency", "must be an ISO 4217 code (three upper-case letters)")
    return code


def exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency``."""
    return EXPONENTS.get(check_currency(currency), DEFAULT_EXPONENT)


def to_decimal(amount_minor: int, currency: str) -> str:
    """The decimal string: 1234 EUR is "12.34", 1500 JPY "1500", 5 BHD "0.005"."""
    return format(Decimal(amount_minor).scaleb(-exponent(currency)), "f")
