"""Yale keypad codes: which codes the lock takes, and the slots the hub may use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ...driver import KeypadCode, LockRefusedError
from .options import MAX_CODE_SLOT, YaleBleOptions

# Yale keypads take 4-8 digit codes.
MIN_PIN_DIGITS, MAX_PIN_DIGITS = 4, 8
# A code may be programmed this much before its window opens (hub/cloud clock skew).
CODE_START_TOLERANCE = timedelta(minutes=1)


def check_code(code: KeypadCode, now: Callable[[], datetime]) -> None:
    """Refuse a code the lock would not take, or would take too early (no schedule over BLE)."""
    if not (code.code.isascii() and code.code.isdigit()):
        raise LockRefusedError("a keypad code must be digits only")
    if not MIN_PIN_DIGITS <= len(code.code) <= MAX_PIN_DIGITS:
        raise LockRefusedError(f"a Yale keypad code has {MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} digits")
    moment = now()
    if code.valid_until <= moment:
        raise LockRefusedError("the code's window has already ended")
    if code.valid_from > moment + CODE_START_TOLERANCE:
        # The lock would accept it at once: Yale codes carry no schedule over BLE.
        raise LockRefusedError("Yale codes are always valid: add them when the window opens")


def hub_slots(options: YaleBleOptions) -> range:
    """The keypad slots reserved for the hub's codes."""
    return range(
        options.keypad_slot_first,
        min(options.keypad_slot_first + options.keypad_slot_count, MAX_CODE_SLOT + 1),
    )
