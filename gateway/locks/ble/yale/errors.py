"""yalexs-ble's and bleak's errors translated into ours, grouped by what the caller should do."""

from __future__ import annotations

from yalexs_ble import AuthError, KeycodeError, OperationFailedError
from yalexs_ble.const import MECHANICAL_OPERATION_ERRORS, OperationError

from ...driver import (
    DuplicateCodeError,
    KeypadFullError,
    LockError,
    LockJammedError,
    LockRefusedError,
    LockUnreachableError,
)

# yalexs-ble wraps an AuthError at most three levels deep (BluetoothError < Disconnected < Auth).
CAUSE_DEPTH = 8
_KEYCODE_REFUSALS: dict[OperationError | int, type[LockRefusedError]] = {
    OperationError.KEYCODE_EXISTING_KEY: DuplicateCodeError,
    OperationError.KEYCODE_NOSPACE: KeypadFullError,
}


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    link: BaseException | None = exc
    depth = 0
    while link is not None and depth < CAUSE_DEPTH:
        if isinstance(link, kind):
            return True
        link, depth = link.__cause__ or link.__context__, depth + 1
    return False


def translate(lock_id: str, operation: str, exc: Exception) -> LockError:
    """yalexs-ble's and bleak's errors as ours, grouped by what the caller should do."""
    if _caused_by(exc, AuthError):
        return LockRefusedError(
            f"lock {lock_id}: the lock rejected the offline key or slot; pair it again: "
            f"lockhub gateway pair yale_ble --lock {lock_id}"
        )
    if isinstance(exc, OperationFailedError):
        if exc.error in MECHANICAL_OPERATION_ERRORS:
            return LockJammedError(f"lock {lock_id}: the bolt did not move ({operation})")
        return LockRefusedError(f"lock {lock_id}: {operation} refused: {exc}")
    if isinstance(exc, KeycodeError):
        refusal = _KEYCODE_REFUSALS.get(exc.error, LockRefusedError)
        return refusal(f"lock {lock_id}: {operation} refused: {exc}")
    # Bleak and connect errors, timeouts, dropped links, an operation whose answer was lost.
    return LockUnreachableError(f"lock {lock_id}: {operation} failed: {type(exc).__name__}")
