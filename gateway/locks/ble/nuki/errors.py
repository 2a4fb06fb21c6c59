"""The Nuki driver's one base exception and the lock's error codes mapped onto it.

Each subclass also derives from the LockError the coordinator acts on: unreachable is retried,
jammed needs a person, refused is final (and says what to do, e.g. pair again).
"""

from __future__ import annotations

from enum import IntEnum

from ...driver import (
    DuplicateCodeError,
    KeypadFullError,
    KeypadUnsupportedError,
    LockError,
    LockJammedError,
    LockRefusedError,
    LockUnreachableError,
)


class ErrorCode(IntEnum):
    """Error codes of an Error Report (0x0012), as the Smart Lock API lists them."""

    BAD_CRC = 0xFD
    BAD_LENGTH = 0xFE
    UNKNOWN = 0xFF
    P_NOT_PAIRING = 0x10
    P_BAD_AUTHENTICATOR = 0x11
    P_BAD_PARAMETER = 0x12
    P_MAX_USER = 0x13
    K_NOT_AUTHORIZED = 0x20
    K_BAD_PIN = 0x21
    K_BAD_NONCE = 0x22
    K_BAD_PARAMETER = 0x23
    K_INVALID_AUTH_ID = 0x24
    K_DISABLED = 0x25
    K_REMOTE_NOT_ALLOWED = 0x26
    K_TIME_NOT_ALLOWED = 0x27
    K_TOO_MANY_PIN_ATTEMPTS = 0x28
    K_TOO_MANY_ENTRIES = 0x29
    K_CODE_ALREADY_EXISTS = 0x2A
    K_CODE_INVALID = 0x2B
    K_CODE_INVALID_TIMEOUT_1 = 0x2C
    K_CODE_INVALID_TIMEOUT_2 = 0x2D
    K_CODE_INVALID_TIMEOUT_3 = 0x2E
    K_AUTO_UNLOCK_TOO_RECENT = 0x40
    K_POSITION_UNKNOWN = 0x41
    K_MOTOR_BLOCKED = 0x42
    K_CLUTCH_FAILURE = 0x43
    K_MOTOR_TIMEOUT = 0x44
    K_BUSY = 0x45
    K_CANCELED = 0x46
    K_NOT_CALIBRATED = 0x47
    K_MOTOR_POSITION_LIMIT = 0x48
    K_MOTOR_LOW_VOLTAGE = 0x49
    K_MOTOR_POWER_FAILURE = 0x4A
    K_CLUTCH_POWER_FAILURE = 0x4B
    K_VOLTAGE_TOO_LOW = 0x4C
    K_FIRMWARE_UPDATE_NEEDED = 0x4D


class NukiError(LockError):
    """Base of the Nuki driver's errors; ``code`` is the lock's error code when it sent one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NukiFrameError(NukiError, LockUnreachableError):
    """Bytes that do not parse (bad CRC, length, MAC): a garbled link, so retry."""


class NukiBusyError(NukiError, LockUnreachableError):
    """The lock is busy or did not answer in time: retry later."""


class NukiRefusedError(NukiError, LockRefusedError):
    """The lock refused the command; retrying will not help."""


class NukiPairingNeededError(NukiRefusedError):
    """The lock no longer accepts our authorization: pair the lock again."""


class NukiKeypadUnsupportedError(NukiError, KeypadUnsupportedError):
    """Keypad codes cannot be managed (no keypad, or no security PIN configured)."""


class NukiJammedError(NukiError, LockJammedError):
    """The motor or clutch failed: the bolt did not move."""


class NukiKeypadFullError(NukiError, KeypadFullError):
    """The keypad holds no more codes."""


class NukiDuplicateCodeError(NukiError, DuplicateCodeError):
    """The keypad already holds this code."""


_REPAIR = "pair the lock again with `lockhub gateway pair nuki_ble`"
_ADVICE: dict[int, tuple[type[NukiError], str]] = {
    ErrorCode.BAD_CRC: (NukiFrameError, "the lock received a damaged frame"),
    ErrorCode.BAD_LENGTH: (NukiFrameError, "the lock received a frame of the wrong length"),
    ErrorCode.K_BUSY: (NukiBusyError, "the lock is busy with another action"),
    ErrorCode.K_NOT_AUTHORIZED: (NukiPairingNeededError, f"authorization rejected; {_REPAIR}"),
    ErrorCode.K_INVALID_AUTH_ID: (NukiPairingNeededError, f"unknown authorization; {_REPAIR}"),
    ErrorCode.K_DISABLED: (NukiPairingNeededError, f"our authorization is disabled; {_REPAIR}"),
    ErrorCode.K_BAD_NONCE: (NukiPairingNeededError, f"nonce rejected; if it repeats, {_REPAIR}"),
    ErrorCode.K_BAD_PIN: (NukiRefusedError, "wrong security PIN; fix security_pin_file"),
    ErrorCode.K_TOO_MANY_PIN_ATTEMPTS: (
        NukiRefusedError,
        "too many wrong security PINs; the lock blocks admin commands for a while",
    ),
    ErrorCode.K_TOO_MANY_ENTRIES: (NukiKeypadFullError, "no free keypad code slot"),
    ErrorCode.K_CODE_ALREADY_EXISTS: (NukiDuplicateCodeError, "the keypad already has this code"),
    ErrorCode.K_MOTOR_BLOCKED: (NukiJammedError, "the motor blocked"),
    ErrorCode.K_MOTOR_TIMEOUT: (NukiJammedError, "the motor ran without reaching its position"),
    ErrorCode.K_CLUTCH_FAILURE: (NukiJammedError, "the clutch failed"),
    ErrorCode.K_MOTOR_LOW_VOLTAGE: (NukiJammedError, "the motor blocked on low battery"),
    ErrorCode.K_MOTOR_POWER_FAILURE: (NukiJammedError, "the motor drew no power"),
    ErrorCode.K_CLUTCH_POWER_FAILURE: (NukiJammedError, "the clutch drew no power"),
    ErrorCode.P_NOT_PAIRING: (
        NukiRefusedError,
        "the lock is not in pairing mode: hold its button for 5 seconds, then retry",
    ),
    ErrorCode.P_MAX_USER: (NukiRefusedError, "the lock has no room for another authorization"),
}


def error_for(code: int, command: int) -> NukiError:
    """The exception for an Error Report with ``code`` about ``command``."""
    try:
        name = ErrorCode(code).name
    except ValueError:
        name = f"0x{code:02X}"
    kind, advice = _ADVICE.get(code, (NukiRefusedError, "the lock refused the command"))
    return kind(f"nuki error {name} on command 0x{command:04X}: {advice}", code)
