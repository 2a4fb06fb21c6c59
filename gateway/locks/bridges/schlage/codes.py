"""Schlage keypad codes: the checks before asking the cloud, and the blocking add and remove.

A code carries a temporary schedule, so the lock itself enforces the window. The blocking
functions run inside ``SchlageAccount.call`` (a worker thread, errors translated there).
"""

from __future__ import annotations

import hmac

import requests
import structlog
from pyschlage import Lock
from pyschlage.code import AccessCode, TemporarySchedule
from pyschlage.exceptions import Error as PySchlageError

from ...driver import DuplicateCodeError, KeypadCode, KeypadFullError, LockRefusedError
from .errors import SchlageUnreachableError

log = structlog.get_logger(__name__)

# Schlage keypads take 4-8 digit codes (all of one length, set on the lock).
MIN_CODE_DIGITS = 4
MAX_CODE_DIGITS = 8


def check_code(code: KeypadCode) -> None:
    """Refuse a code no Schlage keypad takes: not 4-8 digits, or no aware window."""
    if not (code.code.isascii() and code.code.isdigit()):
        raise LockRefusedError("a Schlage keypad code must be digits only")
    if not MIN_CODE_DIGITS <= len(code.code) <= MAX_CODE_DIGITS:
        raise LockRefusedError(
            f"a Schlage keypad code needs {MIN_CODE_DIGITS}-{MAX_CODE_DIGITS} digits"
        )
    if code.valid_from.tzinfo is None or code.valid_from >= code.valid_until:
        raise LockRefusedError("a keypad code needs an aware start before its end")


def add_access_code(device: Lock, code: KeypadCode, lock_id: str) -> str:
    """Add ``code`` with its schedule (blocking); Schlage's id for it, an earlier one's if there."""
    existing = device.get_access_codes()
    earlier = _earlier_attempt(existing, code)
    if earlier is not None:  # an add whose answer was lost: adopt it, do not add twice
        return earlier
    _check_room(device, code, existing)
    access = AccessCode(
        name=code.name,
        code=code.code,
        schedule=TemporarySchedule(code.valid_from, code.valid_until),
    )
    try:
        device.add_access_code(access)
    except (PySchlageError, requests.RequestException):
        if access.access_code_id is None:
            raise
        # The code is on the lock; only the app notification record failed.
        log.warning("schlage.code_notification_failed", lock_id=lock_id)
    if access.access_code_id is None:
        raise SchlageUnreachableError("Schlage did not return an access code id")
    return str(access.access_code_id)


def remove_access_code(device: Lock, schlage_id: str) -> bool:
    """Delete the access code ``schlage_id`` (blocking); False when the lock has none such."""
    for access in device.get_access_codes():
        if access.access_code_id == schlage_id:
            access.delete()  # type: ignore[no-untyped-call]  # pyschlage leaves it unannotated
            return True
    return False


def _earlier_attempt(existing: list[AccessCode], code: KeypadCode) -> str | None:
    """The id of a code identical to ``code`` in digits, name and schedule, if one is there."""
    wanted = TemporarySchedule(code.valid_from, code.valid_until).to_json()
    typed = code.code.encode()
    for other in existing:
        schedule = other.schedule
        if (
            hmac.compare_digest(typed, other.code.encode())
            and other.name == code.name
            and isinstance(schedule, TemporarySchedule)
            and schedule.to_json() == wanted
        ):
            return other.access_code_id
    return None


def _check_room(device: Lock, code: KeypadCode, existing: list[AccessCode]) -> None:
    """Refuse before asking the cloud: Schlage's own answers to these are not documented."""
    if device.access_code_length and len(code.code) != device.access_code_length:
        raise LockRefusedError(f"this Schlage lock takes {device.access_code_length}-digit codes")
    typed = code.code.encode()
    if any([hmac.compare_digest(typed, other.code.encode()) for other in existing]):  # noqa: C419 - compare all, no early exit
        raise DuplicateCodeError("the Schlage keypad already holds this code")
    if device.max_user_codes is not None and len(existing) >= device.max_user_codes:
        raise KeypadFullError(f"all {device.max_user_codes} Schlage access codes are used")
